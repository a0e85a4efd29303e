"""A brand kit from a TOML file, for the command line: `jant makead … --brand brand.toml` and
`jant brand check brand.toml`. The keys are the ones `/brand set` takes, plus `logo = "path.png"`
(relative to the file), which is validated like an uploaded logo and stored as a clean PNG under
the data directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import tomllib
from pathlib import Path

from pydantic import ValidationError

from pipeline.brand import BrandKit
from pipeline.errors import JantError
from pipeline.uploaded_images import LOGO_MAX_BYTES, LOGO_MIN_SHORT_SIDE, UploadedImageError, validate_image

FILE_KEYS = ("name", "primary", "accent", "font", "cta", "url", "voice", "music", "captions", "logo_corner", "end_card")


def _brand_error(path: Path, message: str) -> JantError:
    return JantError(f"{path.name}: {message}", hint="Fix the file and run `jant brand check` on it.")


def store_logo(png: bytes, data_dir: Path) -> Path:
    """A validated logo's PNG under data_dir/brand/, named by its content (the same logo is one file)."""
    dest = data_dir / "brand" / f"logo-{hashlib.sha256(png).hexdigest()[:16]}.png"
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".tmp")
        tmp.write_bytes(png)
        tmp.replace(dest)
    return dest


def _load(path: Path, data_dir: Path) -> BrandKit:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise JantError(f"No brand file at {path}.", hint="Check the path given to --brand.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _brand_error(path, f"not valid TOML ({exc}).") from None
    unknown = sorted(set(raw) - set(FILE_KEYS) - {"logo"})
    if unknown:
        raise _brand_error(path, f"unknown key(s) {', '.join(unknown)}; the keys are {', '.join(FILE_KEYS)}, logo.")
    fields = {k: raw[k] for k in FILE_KEYS if k in raw}
    try:
        kit = BrandKit.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise _brand_error(path, message if message.startswith(where) else f"{where}: {message}") from None
    if "logo" not in raw:
        return kit
    # The logo last: it is stored only once everything else in the file is known to be good.
    logo = (path.parent / str(raw["logo"])).resolve()
    try:
        data = logo.read_bytes()
    except OSError:
        raise _brand_error(path, f"the logo {raw['logo']!r} cannot be read (looked at {logo}).") from None
    try:
        checked = validate_image(data, what="The logo", max_bytes=LOGO_MAX_BYTES, min_short_side=LOGO_MIN_SHORT_SIDE)
    except UploadedImageError as exc:
        raise _brand_error(path, str(exc)) from None
    return kit.model_copy(update={"logo_path": str(store_logo(checked.png, data_dir))})


async def load_brand_file(path: Path, data_dir: Path) -> BrandKit:
    """The kit in `path`; JantError naming the file and the key that is wrong."""
    return await asyncio.to_thread(_load, Path(path), Path(data_dir))
