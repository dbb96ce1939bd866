"""Data lifecycle: `purgemessages` (old messages, in batches) and `eraseuser` (one user's personal data)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.erasure import user_erase
from accounts.models import Erasure, User
from chat import services
from chat.lifecycle import ERASED_TEXT, messages_purge
from chat.models import Conversation, Message, MsgType
from customer_service import services as service_services
from customer_service.models import ServiceAgent, ServiceSession, SessionNote
from tests import factories

pytestmark = pytest.mark.django_db


def say(sender, receiver, msg: str, msg_type: int = MsgType.TEXT):
    return services.private_message_send(caller=factories.caller_of(sender), to_uid=receiver.pk, chat_id=None,
                                         msg_type=msg_type, msg=msg, client_msg_id=None)


def age(days: int, *msg_ids: int) -> None:
    Message.objects.filter(pk__in=msg_ids).update(created_at=timezone.now() - timedelta(days=days))


def uploaded(name: str) -> str:
    stored = default_storage.save(f"uploads/2026/01/{name}", ContentFile(b"\x89PNG fake"))
    return "https://chat.example.com" + default_storage.url(stored)


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def test_purge_deletes_only_what_is_older_in_batches_and_keeps_conversations(alice, bob):
    old = [say(alice, bob, f"old {n}").msg_id for n in range(5)]
    kept = say(bob, alice, "new").msg_id
    age(40, *old)

    done = messages_purge(before=timezone.now() - timedelta(days=30), batch=2)

    assert (done.messages, done.batches) == (5, 3)
    assert list(Message.objects.values_list("pk", flat=True)) == [kept]
    conversation = Conversation.objects.get()
    assert conversation.last_seq == 6 and conversation.last_msg == "new"
    assert say(alice, bob, "after").seq == 7  # seqs go on from where they were


def test_purge_dry_run_counts_and_deletes_nothing(alice, bob):
    age(10, say(alice, bob, "old").msg_id)

    out = StringIO()
    call_command("purgemessages", "--older-than", "5", "--dry-run", stdout=out)

    assert "would delete 1 messages" in out.getvalue()
    assert Message.objects.count() == 1


def test_purge_deletes_images_only_no_kept_message_shows(alice, bob, media):
    alone, shared = uploaded("A" * 24 + ".png"), uploaded("B" * 24 + ".png")
    old = [say(alice, bob, alone, MsgType.IMAGE).msg_id, say(alice, bob, shared, MsgType.IMAGE).msg_id]
    say(bob, alice, shared, MsgType.IMAGE)  # forwarded later: still shown
    age(100, *old)

    out = StringIO()
    call_command("purgemessages", "--older-than", "30", stdout=out)

    assert "deleted 2 messages" in out.getvalue() and "1 image files" in out.getvalue()
    assert not default_storage.exists("uploads/2026/01/" + "A" * 24 + ".png")
    assert default_storage.exists("uploads/2026/01/" + "B" * 24 + ".png")


@pytest.mark.parametrize("args", [["--older-than", "0"], ["--older-than", "-3"], ["--older-than", "9", "--batch", "0"]])
def test_purge_refuses_ranges_that_would_delete_everything(alice, bob, args):
    say(alice, bob, "today")

    with pytest.raises(CommandError):
        call_command("purgemessages", *args)

    assert Message.objects.count() == 1


def test_erase_removes_profile_and_text_and_keeps_the_other_party_history(alice, bob, media):
    avatar = uploaded("C" * 24 + ".png")
    User.objects.filter(pk=alice.pk).update(avatar=avatar, nickname="Alice Liu", email="alice@example.com")
    picture = uploaded("D" * 24 + ".png")
    say(alice, bob, "my phone is 13812345678")
    say(alice, bob, picture, MsgType.IMAGE)
    answer = say(bob, alice, "thanks")
    say(alice, bob, "bye")

    erasure = user_erase(user_id=alice.pk, by="dpo", reason="request 42")

    alice.refresh_from_db()
    assert (alice.username, alice.nickname, alice.avatar, alice.email, alice.is_active) == (
        f"erased-{alice.pk}", "", "", "", False)
    assert not alice.has_usable_password()
    texts = list(Message.objects.order_by("seq").values_list("seq", "sender_id", "msg"))
    assert texts == [(1, alice.pk, ERASED_TEXT), (2, alice.pk, ERASED_TEXT), (answer.seq, bob.pk, "thanks"),
                     (4, alice.pk, ERASED_TEXT)]
    assert Conversation.objects.get().last_msg == ERASED_TEXT
    assert not default_storage.exists("uploads/2026/01/" + "C" * 24 + ".png")
    assert not default_storage.exists("uploads/2026/01/" + "D" * 24 + ".png")
    assert (erasure.messages, erasure.conversations, erasure.files, erasure.by) == (3, 1, 2, "dpo")
    assert Erasure.objects.get().user_id == alice.pk


def test_erase_clears_what_a_consumer_and_an_agent_left_with_a_shop(alice, bob, carol):
    shop = service_services.shop_create(name="Tea", owner=carol)
    service_services.agent_add(shop=shop, user=bob, status=ServiceAgent.Status.ONLINE)
    service_services.consumer_message_send(caller=factories.caller_of(alice), shop_id=shop.pk, msg_type=1,
                                           msg="where is my order", client_msg_id=None)
    session = ServiceSession.objects.get()
    ServiceSession.objects.filter(pk=session.pk).update(rating=2, rating_comment="Alice from Room 301 was upset")
    SessionNote.objects.create(shop=shop, session=session, conversation=session.conversation, author=bob,
                               text="called her at home")

    user_erase(user_id=alice.pk, by="dpo")
    user_erase(user_id=bob.pk, by="dpo")

    session.refresh_from_db()
    assert session.rating == 2 and session.rating_comment == ""  # the figure stays, the words go
    assert SessionNote.objects.get().text == ERASED_TEXT
    assert not ServiceAgent.objects.filter(user=bob).exists()
    assert Message.objects.get(sender=alice).msg == ERASED_TEXT


def test_erase_refuses_a_shop_owner_until_the_shop_has_another(alice, carol):
    service_services.shop_create(name="Tea", owner=carol)

    with pytest.raises(CommandError, match="owns shop"):
        call_command("eraseuser", str(carol.pk), "--noinput")

    assert User.objects.get(pk=carol.pk).is_active and not Erasure.objects.exists()


def test_erase_again_is_harmless_and_the_command_asks_first(alice, bob, monkeypatch):
    say(alice, bob, "hello")
    monkeypatch.setattr("builtins.input", lambda prompt: "no")
    with pytest.raises(CommandError, match="not erased"):
        call_command("eraseuser", str(alice.pk))
    assert User.objects.get(pk=alice.pk).is_active

    out = StringIO()
    call_command("eraseuser", str(alice.pk), "--noinput", "--by", "dpo", stdout=out)
    call_command("eraseuser", str(alice.pk), "--noinput", "--by", "dpo", stdout=out)

    assert "erased user" in out.getvalue()
    assert Erasure.objects.count() == 2 and Message.objects.get().msg == ERASED_TEXT


def test_erase_unknown_user(db):
    with pytest.raises(CommandError, match="no user"):
        call_command("eraseuser", "999999", "--noinput")


def test_the_audit_lines_are_for_superusers_only_and_read_only(alice, bob, client):
    erasure = user_erase(user_id=alice.pk, by="dpo")
    staff = factories.make_user(username="merchant")
    User.objects.filter(pk=staff.pk).update(is_staff=True)
    root = User.objects.create_superuser(username="root", password="x" * 12)
    page = f"/admin/accounts/erasure/{erasure.pk}/change/"

    client.force_login(User.objects.get(pk=staff.pk))
    assert client.get("/admin/accounts/erasure/").status_code == 403
    client.force_login(root)
    assert client.get("/admin/accounts/erasure/").status_code == 200
    assert client.post(page, {"by": "someone else"}).status_code == 403
    assert client.post(f"/admin/accounts/erasure/{erasure.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Erasure.objects.get().by == "dpo"
