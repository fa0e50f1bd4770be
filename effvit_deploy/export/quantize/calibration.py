"""Calibration and held-out images for int8 export, preprocessed exactly as the official EfficientViT evaluation.

Preprocessing (official `efficientvit` classification eval): bicubic resize so the image covers
ceil(H / 0.95) x ceil(W / 0.95) (for a square size this is "shorter side to ceil(size / crop_ratio)"), center crop to
H x W, scale to [0, 1], normalise with the ImageNet mean/std. Output: NCHW float32 arrays of shape (1, 3, H, W).

Sources:
- `--calib DIR`: every JPEG/PNG (any file PIL can open) under DIR, sorted by path; unreadable files are skipped with a
  warning, and it is an error when none remain or when fewer than `count` remain.
- default: real photographs that ship inside scikit-image's wheel (`skimage/data/*.png|jpg`, no download). They are
  split at the source-photo level: CALIB_PHOTOS are only ever used for calibration, HELDOUT_PHOTOS only for measuring
  accuracy (the motorcycle stereo pair stays together on the calibration side). Twelve photos are too few to calibrate
  from, so each photo yields deterministic variants (full view, mirror, corner and zoom crops), taken round-robin.

The held-out set is always the bundled HELDOUT_PHOTOS (also with `--calib DIR`), so accuracy figures are comparable
between runs and never share a source photo with the default calibration set.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ...errors import InvalidInputError, MissingDependencyError, MissingFileError

log = logging.getLogger(__name__)

CROP_RATIO = 0.95
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_CALIB_COUNT = 32

# Bundled scikit-image photographs (in the 0.26 wheel, no pooch download). Synthetic images (chessboard, phantom,
# logo, color, horse silhouette) are left out: they are not photographs and would skew activation ranges.
CALIB_PHOTOS = (
    "astronaut.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "brick.png",
    "grass.png",
    "cell.png",
    "clock_motion.png",
    "page.png",
)
HELDOUT_PHOTOS = ("chelsea.png", "camera.png", "coins.png", "moon.png", "gravel.png", "retina.jpg", "text.png")

# (crop box as fractions of the photo: left, top, right, bottom; mirror). Variant 0 is the plain official view.
VARIANTS: tuple[tuple[tuple[float, float, float, float], bool], ...] = (
    ((0.0, 0.0, 1.0, 1.0), False),
    ((0.0, 0.0, 1.0, 1.0), True),
    ((0.0, 0.0, 0.75, 0.75), False),
    ((0.25, 0.25, 1.0, 1.0), True),
    ((0.25, 0.0, 1.0, 0.75), False),
    ((0.0, 0.25, 0.75, 1.0), True),
    ((0.2, 0.2, 0.8, 0.8), False),
    ((0.2, 0.2, 0.8, 0.8), True),
)
HELDOUT_VARIANTS = 4  # per held-out photo: full, mirror, two corner crops -> 28 samples

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


class ImageSet(list):
    """A list of preprocessed (1, 3, H, W) float32 arrays that also says where they came from (for the manifest)."""

    def __init__(self, arrays: Iterable[np.ndarray] = (), source: dict | None = None) -> None:
        list.__init__(self, arrays)
        self.source = dict(source or {})


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - pillow is in the [bench] extra
        raise MissingDependencyError("int8 calibration needs Pillow: pip install 'effvit-deploy[bench]'") from exc
    return Image


def bundled_photo_dir() -> Path:
    """Folder of the photographs bundled in the installed scikit-image wheel."""
    try:
        import skimage.data
    except ImportError as exc:
        raise MissingDependencyError(
            "int8 export without --calib uses scikit-image's bundled photos: pip install 'effvit-deploy[bench]' "
            "or pass --calib DIR"
        ) from exc
    return Path(skimage.data.__file__).parent


def preprocess(
    image, resolution: tuple[int, int], crop: tuple[float, float, float, float] = (0, 0, 1, 1), mirror: bool = False
) -> np.ndarray:
    """PIL image (any mode) -> (1, 3, H, W) float32, official eval preprocessing after an optional crop and mirror."""
    Image = _pil()
    image = _to_rgb(image)
    if crop != (0, 0, 1, 1):
        w, h = image.size
        box = (round(crop[0] * w), round(crop[1] * h), round(crop[2] * w), round(crop[3] * h))
        image = image.crop(box)
    if mirror:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    height, width = resolution
    target_h, target_w = math.ceil(height / CROP_RATIO), math.ceil(width / CROP_RATIO)
    w, h = image.size
    scale = max(target_h / h, target_w / w)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - width) // 2, (new_h - height) // 2
    image = image.crop((left, top, left + width, top + height))
    arr = np.asarray(image, dtype=np.float32) / 255.0
    arr = (arr - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1)[None])


def _to_rgb(image):
    """Grayscale, palette, RGBA (alpha over white: transparent areas are background), 16-bit -> 8-bit RGB."""
    Image = _pil()
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.float64)
        top = max(float(arr.max()), 1.0)
        image = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8))
    elif image.mode == "F":
        arr = np.asarray(image, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        image = Image.fromarray(((arr - lo) / max(hi - lo, 1e-12) * 255.0).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def _open(path: Path):
    """Open and fully decode an image, or return None (with a warning) when it is not a readable image."""
    Image = _pil()
    try:
        with Image.open(path) as im:
            im.seek(0)  # first frame of animated / multi-page files
            im.load()
            return im.copy()
    except Exception as exc:  # PIL raises a zoo of types for broken files
        log.warning("skipping %s: not a readable image (%s)", path, type(exc).__name__)
        return None


def planned_count(folder: Path | str | None, count: int | None) -> int:
    """How many calibration images an export will hold, without reading any: `count`, else every image file of
    `folder` (an upper bound: unreadable ones are skipped later), else DEFAULT_CALIB_COUNT."""
    if count is not None:
        return count
    if folder is None or not Path(folder).is_dir():
        return DEFAULT_CALIB_COUNT
    return sum(1 for p in _listed_files(Path(folder)) if p.suffix.lower() in IMAGE_SUFFIXES)


def _listed_files(folder: Path) -> list[Path]:
    """Every file of `folder`, recursively, sorted by path; hidden files are not calibration data."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _folder_images(folder: Path) -> list[tuple[Path, object]]:
    if not folder.exists():
        raise MissingFileError(f"calibration folder {folder} does not exist; pass --calib DIR with JPEG/PNG images")
    if not folder.is_dir():
        raise InvalidInputError(f"--calib {folder} is not a folder; pass a folder of JPEG/PNG images")
    files = _listed_files(folder)
    if not files:
        raise InvalidInputError(f"calibration folder {folder} is empty; put JPEG/PNG images in it")
    images = []
    for path in files:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            log.warning("skipping %s: not a JPEG/PNG image file", path)
            continue
        image = _open(path)
        if image is not None:
            images.append((path, image))
    if not images:
        raise InvalidInputError(
            f"calibration folder {folder} has no readable images ({len(files)} file{'s' if len(files) != 1 else ''} "
            "skipped); add JPEG/PNG images"
        )
    return images


def _bundled(names: Sequence[str]) -> list[tuple[str, object]]:
    root = bundled_photo_dir()
    found = [(name, _open(root / name)) for name in names if (root / name).is_file()]
    found = [(name, im) for name, im in found if im is not None]
    if not found:
        raise MissingDependencyError(
            f"no bundled photos found in {root} (scikit-image changed its wheel?); pass --calib DIR with images"
        )
    return found


def _variants(photos: list[tuple[str, object]], count: int, resolution: tuple[int, int]) -> tuple[list, list[str]]:
    """Round-robin over photos, variant k of each photo before variant k+1 of any: (arrays, labels)."""
    arrays, labels = [], []
    for k, (crop, mirror) in enumerate(VARIANTS):
        for name, image in photos:
            if len(arrays) == count:
                return arrays, labels
            arrays.append(preprocess(image, resolution, crop, mirror))
            labels.append(f"{name}#v{k}")
    return arrays, labels


def heldout_images(resolution: tuple[int, int]) -> ImageSet:
    """The evaluation set: HELDOUT_VARIANTS views of each bundled held-out photo (never used for calibration)."""
    photos = _bundled(HELDOUT_PHOTOS)
    arrays, labels = _variants(photos, HELDOUT_VARIANTS * len(photos), resolution)
    source = {
        "kind": "scikit-image bundled photos (held out)",
        "photos": [name for name, _ in photos],
        "samples": len(arrays),
        "variants_per_photo": HELDOUT_VARIANTS,
        "disjoint_from_calibration": "at the source-photo level",
    }
    return ImageSet(arrays, source)


def calibration_images(
    folder: Path | str | None, count: int | None, resolution: tuple[int, int]
) -> tuple[ImageSet, ImageSet]:
    """Calibration samples and held-out samples, both as lists of (1, 3, H, W) float32 NCHW arrays.

    Args:
        folder: a folder of JPEG/PNG images (searched recursively, sorted by path), or None for the bundled photos.
        count: how many calibration samples; None = every readable image of `folder`, or DEFAULT_CALIB_COUNT
            bundled samples.
        resolution: (H, W) of the model input.

    Returns:
        (calib, heldout); both are `ImageSet`s whose `.source` dict describes the data for the manifest.

    Raises:
        MissingFileError: `folder` does not exist.
        InvalidInputError: `folder` is empty, holds no readable image, or fewer than `count`; count < 1.
        MissingDependencyError: Pillow (or, without a folder, scikit-image) is not installed.
    """
    if count is not None and count < 1:
        raise InvalidInputError(f"--calib-count must be at least 1, got {count}")
    height, width = int(resolution[0]), int(resolution[1])
    if folder is not None:
        folder = Path(folder)
        images = _folder_images(folder)
        if count is not None and len(images) < count:
            raise InvalidInputError(
                f"--calib-count {count} but {folder} has only {len(images)} readable images; "
                f"add images or pass --calib-count {len(images)}"
            )
        chosen = images if count is None else images[:count]
        arrays = [preprocess(im, (height, width)) for _, im in chosen]
        source = {
            "kind": "user folder",
            "folder": str(folder),
            "samples": len(arrays),
            "files": [str(p.relative_to(folder)) for p, _ in chosen][:64],
            "augmented": False,
        }
        calib = ImageSet(arrays, source)
    else:
        count = DEFAULT_CALIB_COUNT if count is None else count
        photos = _bundled(CALIB_PHOTOS)
        available = len(photos) * len(VARIANTS)
        if count > available:
            raise InvalidInputError(
                f"--calib-count {count} but the bundled photos give only {available} samples; "
                f"pass --calib DIR with more images or --calib-count {available}"
            )
        arrays, labels = _variants(photos, count, (height, width))
        source = {
            "kind": "scikit-image bundled photos",
            "photos": [name for name, _ in photos],
            "samples": len(arrays),
            "augmented": "deterministic crops/mirrors of the bundled photos (variant k of every photo before k+1)",
            "variants_used": sorted({label.split("#")[1] for label in labels}),
        }
        calib = ImageSet(arrays, source)
    return calib, heldout_images((height, width))
