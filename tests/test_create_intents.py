"""A create whose answer never reached us is found in Replicate's list instead of being paid for again.

Stories, through the real `replicate` client against the emulator: the list of predictions pages newest
first, 100 a page, by absolute `next`/`previous` URLs, and only for the token that made them; a stage
attempt resumed with an unanswered create's intent finds that prediction (even pages back) and waits for
it with no new create; an intent whose POST never arrived, or whose time is past every listed prediction,
creates as usual after one page; a list that fails for a moment is read again, and one that cannot be read
fails the attempt for good with no create. The intent itself is stored before the POST and cleared with
the id, on SQLite and Postgres. (The kill -9 stories are in tests/test_create_intent_kills.py.)
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import replicate
from replicate.exceptions import ReplicateError

from pipeline.providers.base import AttemptStep, PredictionCreated, PredictionIntent, StageContext
from pipeline.providers.poll_scheduler import CreatePacer
from pipeline.providers.replicate_intents import LookupFailed, fingerprint, intent_for
from pipeline.providers.replicate_predictions import PredictionRunner
from storage.repository import JobRepository
from tests.bot_harness import eventually
from tests.emulators.fake_replicate import FakeReplicate

ECHO, ECHO_VERSION = "test/echo", "e" * 64


@pytest.fixture
async def fake() -> AsyncIterator[FakeReplicate]:
    async with FakeReplicate(time_factor=0.01) as f:
        f.add_model(ECHO, ECHO_VERSION, starting=0.0, processing=0.05)
        f.models[ECHO].output = lambda inp: f"echo {inp.get('prompt')}"
        yield f


@pytest.fixture
async def client(fake: FakeReplicate) -> AsyncIterator[replicate.Client]:
    c = replicate.Client(api_token=FakeReplicate.API_TOKEN, base_url=fake.base_url)
    yield c


def _input(n: int, *, seed: int | None = None) -> dict[str, Any]:
    # A data URI as a clip's seed image is sent: left out of the fingerprint (Replicate may rewrite it).
    return {"prompt": f"scene {n}", "seed": secrets.randbelow(2**31) if seed is None else seed,
            "image": f"data:image/png;base64,{n}"}  # fmt: skip


async def _create(client: replicate.Client, n: int, **kw: Any) -> str:
    p = await client.predictions.async_create(version=ECHO_VERSION, input=_input(n, **kw))
    return str(p.id)


class Recorder:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.intents: list[PredictionIntent] = []

    def ctx(self, intent: PredictionIntent | None = None, step: AttemptStep = AttemptStep.WHOLE) -> StageContext:
        async def on_prediction(pid: str) -> None:
            self.ids.append(pid)

        async def on_intent(sent: PredictionIntent) -> None:
            self.intents.append(sent)

        return StageContext(job_id="j1", scene_index=1, stage="clip", attempt=1, on_prediction=on_prediction,
                            intent=intent, on_intent=on_intent, step=step)  # fmt: skip


def _runner(client: replicate.Client) -> PredictionRunner:
    return PredictionRunner(client, label="Echo", version=ECHO_VERSION, deadline_s=10, poll_base_s=0.01,
                            max_attempts=3)  # fmt: skip


def _progress(_: object) -> None:
    return None


async def test_the_list_pages_newest_first_by_absolute_cursor_urls_and_only_for_its_token(
    fake: FakeReplicate, client: replicate.Client
) -> None:
    made = [await _create(client, n) for n in range(230)]
    first = await client.predictions.async_list()
    assert [p.id for p in first.results] == made[::-1][:100]
    assert first.previous is None and first.next is not None and first.next.startswith(fake.base_url + "/v1/")
    second = await client.predictions.async_list(first.next)
    assert [p.id for p in second.results] == made[::-1][100:200]
    third = await client.predictions.async_list(second.next)
    assert [p.id for p in third.results] == made[::-1][200:] and third.next is None
    back = await client.predictions.async_list(second.previous)
    assert [p.id for p in back.results] == [p.id for p in first.results]
    newest = first.results[0]
    assert (newest.model, newest.version, newest.input) == (ECHO, ECHO_VERSION, fake.predictions[made[-1]].input)
    assert newest.created_at and newest.urls and newest.urls["get"].endswith(made[-1])

    with pytest.raises(ReplicateError) as denied:
        await replicate.Client(api_token="r8_wrong", base_url=fake.base_url).predictions.async_list()
    assert denied.value.status == 401
    fake.tokens.add("r8_teammate")
    theirs = await replicate.Client(api_token="r8_teammate", base_url=fake.base_url).predictions.async_list()
    assert theirs.results == [] and theirs.next is None


async def test_a_resumed_attempt_finds_its_unanswered_create_pages_back_and_waits_for_it(
    fake: FakeReplicate, client: replicate.Client
) -> None:
    sent = _input(1)
    intent = intent_for(ECHO_VERSION, sent)
    lost = await client.predictions.async_create(version=ECHO_VERSION, input=sent)  # its answer "never came"
    for n in range(2, 104):  # a busy account: 102 newer predictions push it to the second page
        await _create(client, n, seed=sent["seed"] if n == 2 else None)  # same seed, other prompt: no match
    creates, rec = fake.counts.total_creates, Recorder()

    state = await _runner(client).run(_input(1), rec.ctx(intent), _progress)  # a new seed: the old one is found

    assert state.id == lost.id and state.status == "succeeded" and state.output == "echo scene 1"
    assert fake.counts.total_creates == creates and rec.ids == [lost.id] and rec.intents == []
    assert fake.counts.lists == 2

    with pytest.raises(PredictionCreated) as made:  # the durable engine's create step stops at the id
        await _runner(client).run(_input(1), Recorder().ctx(intent, AttemptStep.CREATE), _progress)
    assert made.value.prediction_id == lost.id and fake.counts.total_creates == creates


async def test_an_intent_whose_post_never_arrived_creates_and_records_the_new_intent(
    fake: FakeReplicate, client: replicate.Client
) -> None:
    await _create(client, 1)
    never_sent = intent_for(ECHO_VERSION, _input(1))  # same prompt, another seed: a POST that never arrived
    rec = Recorder()
    retry = _input(1)
    state = await _runner(client).run(retry, rec.ctx(never_sent), _progress)
    assert fake.counts.total_creates == 2 and fake.counts.lists == 1 and rec.ids == [state.id]
    assert [i.fingerprint for i in rec.intents] == [fingerprint(retry)] and rec.intents[0].model == ECHO_VERSION
    assert fake.predictions[state.id].input == retry

    # An intent newer than everything listed (by more than the clock skew): one page is enough to say no.
    for n in range(2, 105):
        await _create(client, n)
    later = PredictionIntent(ECHO_VERSION, fingerprint(retry), datetime.now(UTC) + timedelta(minutes=10))
    lists = fake.counts.lists
    await _runner(client).run(_input(1), Recorder().ctx(later), _progress)
    assert fake.counts.lists == lists + 1


async def test_a_create_waiting_for_its_turn_has_its_intent_stored_already_and_sends_once_its_turn_comes(
    fake: FakeReplicate, client: replicate.Client
) -> None:
    """The intent's write goes while the create waits for the account's create window, not after it: when
    the turn comes, the POST is the next thing sent (one write fewer on a seed's way to its clip)."""
    pacer = CreatePacer(1, window_s=0.05)  # one create at a time in the window
    runner = PredictionRunner(client, label="Echo", version=ECHO_VERSION, deadline_s=10, poll_base_s=0.01,
                              max_attempts=3, pacer=pacer)  # fmt: skip
    held = await pacer.turn()  # another create holds the only place until its answer comes
    rec = Recorder()
    waiting = asyncio.ensure_future(runner.run(_input(2), rec.ctx(), _progress))

    async def intent_stored() -> bool:
        return len(rec.intents) == 1

    try:
        await eventually(intent_stored, timeout=5, what="the intent stored during the wait for a turn")
        assert fake.counts.total_creates == 0 and rec.ids == []  # still waiting: nothing sent
        held.answered()
        state = await asyncio.wait_for(waiting, timeout=10)
    finally:
        waiting.cancel()
    assert fake.counts.total_creates == 1 and rec.ids == [state.id]
    assert [i.fingerprint for i in rec.intents] == [fingerprint(fake.predictions[state.id].input)]


async def test_a_list_failing_for_a_moment_is_read_again_and_one_that_cannot_be_read_creates_nothing(
    fake: FakeReplicate, client: replicate.Client
) -> None:
    sent = _input(1)
    intent = intent_for(ECHO_VERSION, sent)
    lost = await _create(client, 1, seed=sent["seed"])
    fake.fail_list(500)  # a status the client itself does not retry (it retries 429, 503 and 504 on GETs)
    state = await _runner(client).run(_input(1), Recorder().ctx(intent), _progress)
    assert state.id == lost and fake.counts.total_creates == 1 and fake.counts.lists == 2

    fake.fail_list(403, times=1)  # not worth retrying: the attempt stops, nothing is created
    with pytest.raises(LookupFailed) as failed:
        await _runner(client).run(_input(1), Recorder().ctx(intent), _progress)
    assert fake.counts.total_creates == 1
    assert failed.value.retryable is False and "Replicate dashboard" in str(failed.value)


def test_the_fingerprint_keeps_scalars_and_leaves_out_urls_data_uris_and_lists() -> None:
    base = {"prompt": "a lamp", "seed": 7, "cfg": 2.0, "loop": True, "image": "data:image/png;base64,AAA"}
    same = {**base, "image": "https://replicate.delivery/pbxt/x.png", "cfg": 2, "frames": [1, 2]}
    assert fingerprint(base) == fingerprint(same)
    assert fingerprint(base) != fingerprint({**base, "seed": 8})
    assert fingerprint(base) != fingerprint({**base, "prompt": "a desk lamp"})


async def test_an_intent_is_stored_before_the_post_and_cleared_with_the_id(database: Path | str) -> None:
    repo = await JobRepository.open(database)
    try:
        now = datetime.now(UTC).isoformat()
        await repo.insert_job(
            {
                "id": "j1",
                "status": "running",
                "request": {},
                "ui": {},
                "providers": {},
                "offline": False,
                "env": "dev",
                "gpu_seconds": 0.0,
                "cost_usd": 0.0,
                "notes": [],
                "created_at": now,
                "updated_at": now,
            },
            [{"scene_index": 1, "stage": "clip", "status": "running", "attempt": 1}],
        )
        sent = datetime(2026, 12, 5, 4, 30, 0, 123456, tzinfo=UTC)
        for attempt, fp in ((1, "f" * 64), (2, "a" * 64)):  # a later attempt's intent replaces the last
            await repo.record_intent("j1", 1, "clip", attempt=attempt, provider="svd", model="v", fingerprint=fp,
                                     sent_at=sent)  # fmt: skip
        assert await repo.prediction_intent("j1", 1, "clip") == {
            "attempt": 2, "provider": "svd", "model": "v", "fingerprint": "a" * 64, "sent_at": sent,
        }  # fmt: skip
        assert await repo.prediction_intent("j1", 2, "clip") is None
        await repo.record_prediction("j1", 1, "clip", "svd", "p1")
        assert await repo.prediction_intent("j1", 1, "clip") is None
        # A stage made again (its row dropped, or a new storyboard's rows) never finds an old create.
        stage = {"scene_index": 1, "stage": "clip", "status": "running", "attempt": 1}
        for drop in (
            lambda: repo.update_job_dropping_stages("j1", [(1, "clip")]),
            lambda: repo.replace_storyboard("j1", {}, [stage]),
        ):
            await repo.record_intent("j1", 1, "clip", attempt=1, provider="svd", model="v", fingerprint="b" * 64,
                                     sent_at=sent)  # fmt: skip
            await drop()
            assert await repo.prediction_intent("j1", 1, "clip") is None
    finally:
        await repo.close()
