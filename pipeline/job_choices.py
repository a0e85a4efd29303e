"""What one job's ad sounds like and how it is captioned, given its brand kit and the process settings.

The kit recorded at approval (`Job.brand`) overrides the process-wide settings for that job only:
`captions` over `JANT_CAPTIONS`, `voice` over `JANT_VOICE_ID` (a voice the request names wins over
both), `music` over the ad's own mood ("none": no music bed at all). Every place that reads one of
these for a job asks `job_choices`, so a kit changed after approval, a re-render and a restarted
job all agree on what the job was made with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.brand import BrandKit
from pipeline.captions import CaptionMode
from pipeline.moods import Mood

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.models import Job

NO_MUSIC = "none"  # the kit's `music` value that turns the bed off


@dataclass(frozen=True)
class JobChoices:
    captions: CaptionMode
    voice_id: str | None  # None: the voice provider's own default
    music: Mood | None  # the mood the bed is composed in; None: the kit turned music off

    @property
    def music_off_by_brand(self) -> bool:
        return self.music is None


def job_choices(job: Job, settings: Settings) -> JobChoices:
    """The job's effective caption mode, voice id and music mood. A job with no kit (made before
    kits existed, or not approved yet) gets the settings and its request, as before."""
    kit = job.brand or BrandKit()
    captions = kit.captions or CaptionMode(settings.audio.captions)
    voice_id = job.request.voice or kit.voice or settings.audio.voice_id
    music: Mood | None
    if kit.music == NO_MUSIC:
        music = None
    elif kit.music:
        music = Mood(kit.music)
    else:
        music = job.request.mood
    return JobChoices(captions=captions, voice_id=voice_id, music=music)


BRAND_NO_MUSIC_NOTE = "The ad has no music: the brand kit says music = none."
