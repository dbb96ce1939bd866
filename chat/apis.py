"""Groups over HTTP (/api/v1/groups/...): the socket's group.* actions, same rules and pushes."""

from rest_framework.views import APIView

from chat import groups, ids
from chat.models import ChatType, Participant
from chat.protocol import read_bool, read_int_list, read_str
from imchat.api import caller_of, ok
from imchat.errors import bad_request


def _name(data) -> str:
    name = (read_str(data, "name", required=True, max_length=groups.NAME_CHARS) or "").strip()
    if not name:
        raise bad_request("name: required")
    return name


class GroupListApi(APIView):
    """GET: the groups I am in. POST {name, uids}: create one (I become its owner)."""

    def get(self, request):
        rows = (
            Participant.objects.filter(user=request.user, left_seq__isnull=True, conversation__chat_type=ChatType.GROUP)
            .select_related("conversation")
            .order_by("conversation_id")
        )
        return ok([{"group_id": row.conversation.group_id, "chat_id": row.conversation.chat_id,
                    "name": row.conversation.title, "role": row.role} for row in rows])

    def post(self, request):
        group = groups.group_create(caller=caller_of(request), name=_name(request.data),
                                    uids=read_int_list(request.data, "uids"))
        return ok({"group_id": group.pk, "chat_id": ids.group_chat_id(group.pk), "name": group.name}, 201)


class GroupApi(APIView):
    """GET: members. PATCH {name}: rename. DELETE: dissolve (owner)."""

    def get(self, request, group_id: int):
        return ok(groups.group_members(caller=caller_of(request), group_id=group_id))

    def patch(self, request, group_id: int):
        name = _name(request.data)
        groups.group_rename(caller=caller_of(request), group_id=group_id, name=name)
        return ok({"group_id": group_id, "name": name})

    def delete(self, request, group_id: int):
        groups.group_dissolve(caller=caller_of(request), group_id=group_id)
        return ok({"group_id": group_id})


class GroupMembersApi(APIView):
    """GET: members. POST {uids}: invite."""

    def get(self, request, group_id: int):
        return ok(groups.group_members(caller=caller_of(request), group_id=group_id))

    def post(self, request, group_id: int):
        uids = read_int_list(request.data, "uids")
        if not uids:
            raise bad_request("uids: required")
        return ok({"group_id": group_id, "uids": groups.group_invite(caller=caller_of(request), group_id=group_id,
                                                                     uids=uids)})


class GroupMemberApi(APIView):
    """DELETE: leave (myself) or kick (someone else). PATCH {role} / {muted}: owner/admin changes."""

    def delete(self, request, group_id: int, uid: int):
        caller = caller_of(request)
        if uid == caller.uid:
            groups.group_leave(caller=caller, group_id=group_id)
        else:
            groups.group_kick(caller=caller, group_id=group_id, uid=uid)
        return ok({"group_id": group_id, "uid": uid})

    def patch(self, request, group_id: int, uid: int):
        caller = caller_of(request)
        result = {"group_id": group_id, "uid": uid}
        if "role" in request.data:
            role = read_str(request.data, "role", required=True)
            groups.group_set_role(caller=caller, group_id=group_id, uid=uid, role=role)
            result["role"] = role
        if "muted" in request.data:
            muted = read_bool(request.data, "muted")
            groups.group_mute(caller=caller, group_id=group_id, uid=uid, muted=muted)
            result["muted"] = muted
        if len(result) == 2:
            raise bad_request("role or muted: required")
        return ok(result)


