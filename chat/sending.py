"""The chat.sendMsg pipeline (wiring between the apps), for one request or a batch of them.

Each kind's policy looks at its messages together (`*_plan`: private, group, customer service);
every message a policy accepts goes into one store for the whole batch (chat/messages.py: one
statement on PostgreSQL); what a policy cannot settle without locks or lookups of its own (a first
message, a new or queued session, a claim) goes one by one through that kind's full path, after.
Requests arrive parsed (chat/inputs.py): nothing here reads a frame again.
"""

import logging
from collections import defaultdict
from contextlib import nullcontext

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from chat import groups, services
from chat.inputs import SendInput
from chat.messages import Draft, Plan, Stored, message_find_sent, messages_store
from chat.models import ChatType
from chat.protocol import Caller
from customer_service import services as service_services
from imchat import outages
from imchat.errors import AppError, Code, forbidden

logger = logging.getLogger(__name__)

SERVER_FAULT = AppError(Code.SERVER_FAULT, "server error; nothing was stored, you may resend")

Outcome = Stored | AppError


def send_many(requests: list[tuple[Caller, SendInput]]) -> list[Outcome]:
    """What became of each request, in order: its stored message, or the error to answer."""
    now = timezone.now()
    outcomes: list[Outcome | None] = [None] * len(requests)
    by_kind: dict[int, list[tuple[int, Caller, SendInput]]] = defaultdict(list)
    for index, (caller, send) in enumerate(requests):
        by_kind[send.chat_type].append((index, caller, send))
    plans = [_plan(kind, items, now) for kind, items in by_kind.items()]
    alone = [index for plan in plans for index in plan.alone]
    for plan in plans:
        for index, error in plan.errors.items():
            outcomes[index] = error
    drafts = {index: draft for plan in plans for index, draft in plan.drafts.items()}
    left_out, failed = _store(plans, drafts, outcomes, now)
    firsts = _first_messages(plans, left_out, outcomes)
    alone += failed + [index for index in left_out if index not in firsts and outcomes[index] is None]
    left_out, failed = _store(plans, firsts, outcomes, now)
    alone += left_out + failed
    for index in sorted(set(alone)):
        outcomes[index] = _send_alone(*requests[index])
    return outcomes


def _store(plans: list[Plan], drafts: dict[int, Draft], outcomes: list[Outcome | None],
           now) -> tuple[list[int], list[int]]:
    """Stores the drafts together, their outcomes set; the indexes the store left out, and those of
    a store that failed."""
    if not drafts:
        return [], []
    try:
        # On PostgreSQL messages_store is atomic by itself: a transaction only for what runs after it.
        together = connection.vendor != "postgresql" or any(plan.after_store for plan in plans)
        with transaction.atomic() if together else nullcontext():
            batch = list(drafts)
            stored = messages_store([drafts[index] for index in batch], now=now)
            done = {index: one for index, one in zip(batch, stored) if one is not None}
            for plan in plans:
                if plan.after_store:
                    plan.after_store(done)
    except IntegrityError:  # a resent client_msg_id: one by one finds which
        return [], list(drafts)
    except Exception as error:
        outages.report(logger, error, "a batch of %d messages failed; sending them one by one", len(drafts),
                       requests=0)  # each is answered (and counted) one by one
        return [], list(drafts)
    left_out = []
    for index, one in zip(batch, stored):
        if one is None:  # no conversation yet, or its session changed
            left_out.append(index)
        else:
            outcomes[index] = one
    return left_out, []


def _first_messages(plans: list[Plan], left_out: list[int], outcomes: list[Outcome | None]) -> dict[int, Draft]:
    """The drafts left out for want of a conversation, of the kinds that open conversations
    together (a batch of first messages went one by one: ~7 ms each, the batch waiting): opened
    now; those that cannot be get their error. What is returned goes to one more store."""
    firsts: dict[int, Draft] = {}
    for plan in plans:
        mine = {index: plan.drafts[index] for index in left_out if index in plan.drafts}
        if plan.open_conversations is None or not mine:
            continue
        try:
            errors = plan.open_conversations(mine)
        except Exception as error:  # they go alone, each through its full path
            outages.report(logger, error, "opening %d conversations failed; sending them one by one", len(mine),
                           requests=0)
            continue
        for index, error in errors.items():
            outcomes[index] = error
        firsts.update({index: draft for index, draft in mine.items() if index not in errors})
    return firsts


def _plan(chat_type: int, items: list[tuple[int, Caller, SendInput]], now) -> Plan:
    if chat_type == ChatType.PRIVATE:
        return services.private_plan(items)
    if chat_type == ChatType.GROUP:
        return groups.group_plan(items)
    if chat_type == ChatType.SERVICE:
        return service_services.service_plan(items, now=now)
    return Plan(errors={index: forbidden("system notices cannot be sent by users") for index, _, _ in items})


def _send_alone(caller: Caller, send: SendInput) -> Outcome:
    """One message through its kind's full path; a resend answers with the message stored before."""
    try:
        body = dict(msg_type=send.msg_type, msg=send.msg, client_msg_id=send.client_msg_id)
        if send.chat_type == ChatType.PRIVATE:
            return services.private_message_send(caller=caller, to_uid=send.to_uid, chat_id=send.chat_id,
                                                 card=send.card, **body)
        if send.chat_type == ChatType.GROUP:
            return groups.group_message_send(caller=caller, group_id=groups.group_id_of(send), **body)
        return service_services.service_message_send(caller=caller, send=send)
    except AppError as error:
        return error
    except IntegrityError:
        # The same client_msg_id was stored before (a resend, or a race from another socket or
        # process): answer with that one.
        existing = message_find_sent(sender_id=caller.uid, client_msg_id=send.client_msg_id)
        if existing is not None:
            return existing
        logger.exception("storing a message failed for user %s", caller.uid)
        return SERVER_FAULT
    except Exception as error:
        outages.report(logger, error, "storing a message failed for user %s", caller.uid)
        return SERVER_FAULT
