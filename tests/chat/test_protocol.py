"""The frame format (PROTOCOL.md section 2), field readers, and chat ids (section 3): pure functions."""

import json

import pytest

from chat import ids
from chat.models import ChatType
from chat.protocol import (
    PONG_TEXT,
    Envelope,
    FrameTooLarge,
    Pong,
    error_reply,
    parse,
    push_text,
    read_bool,
    read_int,
    read_str,
    reply,
)
from imchat.errors import AppError, Code


def frame(**fields) -> str:
    return json.dumps(fields, ensure_ascii=False)


def parse_error(text: str | None, data: bytes | None = None) -> AppError:
    with pytest.raises(AppError) as raised:
        parse(text, data)
    return raised.value


# --- parse --------------------------------------------------------------------------------------


def test_a_request_frame_becomes_an_envelope():
    envelope = parse(frame(**{"class": "chat", "action": "sendMsg", "content": {"msg": "hi"}}), None)

    assert envelope == Envelope(cls="chat", action="sendMsg", content={"msg": "hi"}, req_id=None)


def test_class_and_action_are_matched_case_insensitively_but_kept_as_sent():
    envelope = parse(frame(**{"class": "Chat", "action": "SENDMSG"}), None)

    assert envelope.key == ("chat", "sendmsg")
    assert (envelope.cls, envelope.action) == ("Chat", "SENDMSG")


@pytest.mark.parametrize("text", ["ping", "PING", "", "{not json", "   "])
def test_a_frame_that_is_not_json_is_a_heartbeat(text):
    with pytest.raises(Pong):
        parse(text, None)


@pytest.mark.parametrize("text", ["[]", "[1, 2]", "42", '"chat"', "null", "true"])
def test_json_that_is_not_an_object_is_a_heartbeat(text):
    with pytest.raises(Pong):
        parse(text, None)


@pytest.mark.parametrize("fields", [{}, {"action": "sendMsg"}, {"class": None, "action": "sendMsg"},
                                    {"class": "", "action": "sendMsg"}])
def test_an_object_without_a_class_is_a_heartbeat(fields):
    with pytest.raises(Pong):
        parse(json.dumps(fields), None)


def test_the_pong_reply_is_exactly_the_compat_frame():
    assert json.loads(PONG_TEXT) == {"code": -1, "msg": "PONG", "result": None}


@pytest.mark.parametrize("fields", [{"class": "chat"}, {"class": "chat", "action": None},
                                    {"class": "chat", "action": ""}])
def test_a_class_without_an_action_is_missing_action(fields):
    error = parse_error(json.dumps(fields))

    assert (error.code, error.msg) == (Code.BAD_REQUEST, "missing action")


def test_absent_content_means_an_empty_object():
    assert parse(frame(**{"class": "user", "action": "friendList"}), None).content == {}


def test_null_content_means_an_empty_object():
    assert parse(frame(**{"class": "user", "action": "friendList", "content": None}), None).content == {}


@pytest.mark.parametrize("content", [[], [1], "text", 5, True])
def test_content_that_is_not_an_object_is_a_bad_request(content):
    error = parse_error(frame(**{"class": "chat", "action": "sendMsg", "content": content}))

    assert (error.code, error.msg) == (Code.BAD_REQUEST, "content: must be an object")


def test_a_binary_frame_is_refused_as_text_frames_only():
    error = parse_error(None, b'{"class": "chat", "action": "sendMsg"}')

    assert (error.code, error.msg) == (Code.BAD_REQUEST, "text frames only")


def test_a_frame_over_the_byte_limit_is_frame_too_large(settings):
    settings.IM_MAX_FRAME_BYTES = 100

    with pytest.raises(FrameTooLarge) as raised:
        parse(frame(**{"class": "chat", "action": "sendMsg", "content": {"msg": "x" * 200}}), None)

    assert (raised.value.code, raised.value.msg) == (Code.BAD_REQUEST, "frame too large")


def test_the_frame_limit_counts_utf8_bytes_not_characters(settings):
    # given a frame of fewer than 100 characters but more than 100 bytes
    settings.IM_MAX_FRAME_BYTES = 100
    text = frame(**{"class": "chat", "action": "sendMsg", "content": {"msg": "你" * 30}})
    assert len(text) < 100 < len(text.encode())

    # when / then
    with pytest.raises(FrameTooLarge):
        parse(text, None)


def test_a_frame_at_the_byte_limit_is_accepted(settings):
    text = frame(**{"class": "chat", "action": "typing", "content": {"chat_id": "1_2"}})
    settings.IM_MAX_FRAME_BYTES = len(text.encode())

    assert parse(text, None).content == {"chat_id": "1_2"}


@pytest.mark.parametrize("req_id", ["abc-1", 7, 7.5])
def test_req_id_is_kept(req_id):
    envelope = parse(frame(**{"class": "chat", "action": "typing", "req_id": req_id}), None)

    assert envelope.req_id == req_id
    assert reply(Code.OK, None, None, envelope.req_id)["req_id"] == req_id


@pytest.mark.parametrize("req_id", [None, True, {"a": 1}, [1]])
def test_a_req_id_that_is_not_a_string_or_number_is_dropped(req_id):
    envelope = parse(frame(**{"class": "chat", "action": "typing", "req_id": req_id}), None)

    assert envelope.req_id is None
    assert "req_id" not in reply(Code.OK, None, None, envelope.req_id)


def test_req_id_is_kept_on_a_parse_error_after_the_class():
    error = parse_error(frame(**{"class": "chat", "req_id": "r9"}))

    assert error_reply(error) == {"code": 0, "msg": "missing action", "result": None, "req_id": "r9"}


def test_a_non_string_class_or_action_is_a_bad_request():
    assert parse_error(frame(**{"class": 5, "action": "x"})).msg == "class: must be a string"
    assert parse_error(frame(**{"class": "chat", "action": 5})).msg == "action: must be a string"


def test_a_reply_has_exactly_code_msg_result():
    assert reply(Code.RECENT_CHATS, {"rows": []}) == {"code": 102, "msg": None, "result": {"rows": []}}


def test_a_pushed_frame_wraps_an_encoded_result():
    assert json.loads(push_text(Code.MESSAGE, '{"a":1}')) == {"code": 200, "msg": None, "result": {"a": 1}}


# --- read_int / read_str / read_bool ------------------------------------------------------------


@pytest.mark.parametrize("raw, value", [(5, 5), ("5", 5), (" 12 ", 12), (5.0, 5), ("0", 0), (2**63 - 1, 2**63 - 1)])
def test_read_int_accepts_numbers_numeric_strings_and_whole_floats(raw, value):
    assert read_int({"n": raw}, "n") == value


@pytest.mark.parametrize("raw", [True, False, 5.5, "5.5", "five", "1e3", [5], {"n": 5}, "٣"])
def test_read_int_refuses_bools_fractions_and_non_numbers(raw):
    with pytest.raises(AppError) as raised:
        read_int({"n": raw}, "n")

    assert (raised.value.code, raised.value.msg) == (Code.BAD_REQUEST, "n: must be an integer")


@pytest.mark.parametrize("raw", [2**63, 10**30, "9223372036854775808", "1" * 40, -1, "-1"])
def test_read_int_refuses_numbers_out_of_range(raw):
    with pytest.raises(AppError) as raised:
        read_int({"n": raw}, "n")

    assert raised.value.code == Code.BAD_REQUEST
    assert raised.value.msg.startswith("n: ")


@pytest.mark.parametrize("content", [{}, {"n": None}, {"n": ""}])
def test_read_int_treats_absent_null_and_empty_as_missing(content):
    assert read_int(content, "n") is None
    assert read_int(content, "n", default=3) == 3
    with pytest.raises(AppError) as raised:
        read_int(content, "n", required=True)
    assert raised.value.msg == "n: required"


def test_read_int_honours_a_minimum():
    with pytest.raises(AppError):
        read_int({"page": 0}, "page", minimum=1)
    assert read_int({"page": 1}, "page", minimum=1) == 1


def test_read_str_reads_strings_and_numbers_as_text():
    assert read_str({"s": "abc"}, "s") == "abc"
    assert read_str({"s": 12}, "s") == "12"


@pytest.mark.parametrize("raw", [True, ["a"], {"a": 1}])
def test_read_str_refuses_non_strings(raw):
    with pytest.raises(AppError) as raised:
        read_str({"s": raw}, "s")

    assert raised.value.msg == "s: must be a string"


def test_read_str_enforces_required_and_max_length():
    with pytest.raises(AppError) as missing:
        read_str({"s": ""}, "s", required=True)
    with pytest.raises(AppError) as too_long:
        read_str({"s": "abcd"}, "s", max_length=3)

    assert missing.value.msg == "s: required"
    assert too_long.value.msg == "s: at most 3 characters"
    assert read_str({"s": "abc"}, "s", max_length=3) == "abc"


@pytest.mark.parametrize("raw, value", [(True, True), (False, False), (1, True), (0, False), ("1", True),
                                        ("0", False), ("true", True), ("FALSE", False), (None, False), ("", False)])
def test_read_bool_reads_booleans_and_their_compat_spellings(raw, value):
    assert read_bool({"b": raw}, "b") is value


@pytest.mark.parametrize("raw", [2, "yes", [True], 1.5])
def test_read_bool_refuses_anything_else(raw):
    with pytest.raises(AppError) as raised:
        read_bool({"b": raw}, "b")

    assert raised.value.msg == "b: must be a boolean"


# --- chat ids -----------------------------------------------------------------------------------


def test_a_private_chat_id_sorts_the_two_ids_as_numbers():
    assert ids.private_chat_id(7, 30) == "7_30"
    assert ids.private_chat_id(30, 7) == "7_30"


def test_a_service_chat_id_puts_the_shop_first_and_is_not_sorted():
    assert ids.service_chat_id(shop_id=2, user_id=5) == "2____5"
    assert ids.service_chat_id(shop_id=5, user_id=2) == "5____2"


def test_group_and_system_chat_ids():
    assert ids.group_chat_id(12) == "g12"
    assert ids.system_chat_id(5) == "sys_5"


@pytest.mark.parametrize(
    "chat_id, chat_type, a, b",
    [
        ("7_30", ChatType.PRIVATE, 7, 30),
        ("30_7", ChatType.PRIVATE, 7, 30),
        ("2____5", ChatType.SERVICE, 2, 5),
        ("5____2", ChatType.SERVICE, 5, 2),
        ("g12", ChatType.GROUP, 12, 0),
        ("sys_5", ChatType.SYSTEM, 5, 0),
    ],
)
def test_chat_ids_parse_to_their_type_and_parties(chat_id, chat_type, a, b):
    ref = ids.parse_chat_id(chat_id)

    assert (ref.chat_type, ref.a, ref.b) == (chat_type, a, b)


@pytest.mark.parametrize("chat_id", ["7_30", "2____5", "g12", "sys_5"])
def test_a_parsed_chat_id_builds_back_to_itself(chat_id):
    assert ids.parse_chat_id(chat_id).chat_id == chat_id


def test_a_private_chat_id_sent_unsorted_is_read_as_the_canonical_one():
    assert ids.parse_chat_id("30_7").chat_id == "7_30"


@pytest.mark.parametrize(
    "chat_id",
    ["", "7", "7_", "_7", "7__30", "7___30", "7_____30", "a_b", "g", "gx", "G12", "sys5", "sys_", "7_30_1",
     "1" * 19 + "_1", " 7_30", "7_30 ", "-7_30", "g-1"],
)
def test_invalid_chat_ids_are_refused(chat_id):
    with pytest.raises(AppError) as raised:
        ids.parse_chat_id(chat_id)

    assert (raised.value.code, raised.value.msg) == (Code.BAD_REQUEST, "chat_id: not a valid chat id")


@pytest.mark.parametrize("chat_id", [None, 730, ["7_30"]])
def test_a_chat_id_that_is_not_a_string_is_refused(chat_id):
    with pytest.raises(AppError) as raised:
        ids.parse_chat_id(chat_id)

    assert raised.value.msg == "chat_id: must be a string"
