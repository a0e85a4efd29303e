"""Seed images from the team's own product photo: for the scenes that show the product, the photo
(fitted with a blurred fill) is what the video model animates. Local and unpaid: no prediction, a
cost of zero, and a restarted job finds the fitted seed on disk like any other stage's output."""

from __future__ import annotations

import asyncio

from pipeline.errors import ProviderError
from pipeline.photo_fit import fit_photo
from pipeline.providers.base import SeedRequest, StageContext, StageResult


class ProductPhotoSeeds:
    name = "product-photo"
    offline = False  # the team's real product, not a placeholder

    async def generate(self, request: SeedRequest, ctx: StageContext) -> StageResult:
        if request.photo is None:
            raise ProviderError(f"Scene {request.scene.index} should show the product photo, but the request has none.",
                                retryable=False)  # fmt: skip
        try:
            await asyncio.to_thread(fit_photo, request.photo, request.width, request.height, request.dest)
        except FileNotFoundError:
            raise ProviderError(
                "The product photo is no longer on disk.", retryable=False,
                hint="Make the ad again with the photo attached.",
            ) from None  # fmt: skip
        except OSError as exc:
            raise ProviderError(f"The product photo cannot be read ({exc}).", retryable=False,
                                hint="Make the ad again with the photo attached.") from None  # fmt: skip
        await ctx.progress(100.0, "product photo")
        return StageResult(path=request.dest, cost_usd=0.0)

    async def cancel(self, prediction_id: str) -> None:
        """Nothing to cancel: no prediction is ever made."""
