"""Benchmark data, made through the ORM in one process: users with tokens, groups, a shop with agents.

Run by `imbench` with the servers' own environment (same database, same JWT secret):

    python -m bench.fixtures '{"users": 200, "prefix": "b1a2", "group": false, "agents": 0}'

prints one JSON line: {"users": [{"id", "token"}...], "group_id", "shop_id", "agents": [...]}.
Users are bulk-inserted (10,000 take a second or two); groups and shops go through the product's
services like any other. `"groups_each": 3, "agent_every": 10` (connect mode) puts every user in 3
groups of about GROUP_SEATS members and makes every tenth user an online agent of one shop, so that
opening their sockets does the work it does for real users (the naive consumer joins the groups too).
"""

import json
import math
import os
import sys

GROUP_SEATS = 50
# Connect mode's users: each in GROUPS_EACH chat groups, every AGENT_EVERY-th an online agent of a shop.
GROUPS_EACH = 3
AGENT_EVERY = 10


def make(*, users: int, prefix: str, group: bool = False, agents: int = 0, groups_each: int = 0,
         agent_every: int = 0) -> dict:
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from accounts.models import User
    from accounts.tokens import token_mint

    names = [f"bench_{prefix}_{index}" for index in range(users + agents)]
    with transaction.atomic():
        User.objects.bulk_create(
            [User(username=name, nickname=f"b{index}", password=make_password(None)) for index, name in enumerate(names)],
            batch_size=1000,
        )
    ids = dict(User.objects.filter(username__in=names).values_list("username", "id"))
    everyone = [{"id": ids[name], "token": token_mint(user_id=ids[name], ttl=24 * 3600)} for name in names]
    made: dict = {"users": everyone[:users], "agents": everyone[users:], "group_id": None, "shop_id": None}
    if group and users >= 2:
        made["group_id"] = _group(everyone[:users])
    if agents:
        made["shop_id"] = _shop(everyone[users:], consumers=users)
    if groups_each:
        made["group_ids"] = _groups_each(everyone[:users], groups_each)
    if agent_every:
        made["shop_id"] = _shop(everyone[:users:agent_every], consumers=0)
    return made


def _group(members: list[dict]) -> int:
    from accounts.models import User
    from chat.groups import group_create
    from chat.protocol import Caller

    owner = User.objects.get(pk=members[0]["id"])
    group = group_create(caller=Caller(user=owner, base_url=""), name="imbench",
                         uids=[member["id"] for member in members[1:]])
    return group.pk


def _groups_each(members: list[dict], each: int) -> list[int]:
    """Deal `each` seats per user round-robin over groups of about GROUP_SEATS: user i gets seats
    each*i .. each*i+each-1, so their groups are distinct whenever there are at least `each` groups."""
    from accounts.models import User
    from chat.groups import group_create
    from chat.protocol import Caller

    count = max(each, math.ceil(len(members) * each / GROUP_SEATS))
    seats: list[list[int]] = [[] for _ in range(count)]
    for index, member in enumerate(members):
        for seat in range(each * index, each * index + each):
            seats[seat % count].append(member["id"])
    owners = User.objects.in_bulk([uids[0] for uids in seats if uids])
    return [group_create(caller=Caller(user=owners[uids[0]], base_url=""), name=f"imbench {number}", uids=uids[1:]).pk
            for number, uids in enumerate(seats) if uids]


def _shop(agents: list[dict], *, consumers: int) -> int:
    from accounts.models import User
    from customer_service.models import ServiceAgent
    from customer_service.services import agent_add, shop_create

    users = {user.pk: user for user in User.objects.filter(pk__in=[agent["id"] for agent in agents])}
    shop = shop_create(name="imbench shop", owner=users[agents[0]["id"]])
    # Room for every consumer on any one agent, so capacity never queues a benchmark message.
    for agent in agents:
        agent_add(shop=shop, user=users[agent["id"]], status=ServiceAgent.Status.ONLINE,
                  max_sessions=max(consumers, 10))
    return shop.pk


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imchat.settings")
    import django

    django.setup()
    print(json.dumps(make(**json.loads(sys.argv[1]))))


if __name__ == "__main__":
    main()
