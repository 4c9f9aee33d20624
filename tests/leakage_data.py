"""A constructed leakage case: real photos (scikit-learn's two bundled sample images, cut into
non-overlapping 106-pixel tiles) with planted copies, and sentences with planted re-punctuated
and lightly edited copies. Originals and copies are put in different splits; the other tiles and
sentences are the unrelated items that must not be reported.

Copies are made of textured tiles only (grayscale standard deviation >= 20): on a flat tile (sky,
a blank wall) the difference hash compares noise, so JPEG re-encoding moves it by up to 19 of 64
bits, beyond the threshold. The flat tiles stay in the data as unrelated items.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

TILE = 106
MIN_TEXTURE_STD = 20.0
SPLITS = ("train", "dev", "test")


def tiles() -> list:
    from sklearn.datasets import load_sample_images

    out = []
    for pixels in load_sample_images().images:
        image = Image.fromarray(pixels)
        width, height = image.size
        for y in range(0, height - TILE + 1, TILE):
            for x in range(0, width - TILE + 1, TILE):
                out.append(image.crop((x, y, x + TILE, y + TILE)))
    return out


def encode(image, name, quality=95) -> bytes:
    """The file an item is imported from: PNG for a .png name, else JPEG of ``quality``."""
    buffer = io.BytesIO()
    if name.endswith(".png"):
        image.save(buffer, format="PNG")
    else:
        image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def crop(image, fraction) -> Image.Image:
    width, height = image.size
    c = round(width * fraction)
    return image.crop((c, c, width - c, height - c))


# Each planted copy of an original (a JPEG of quality 95): (name suffix, transform, JPEG quality).
COPIES = (
    ("jpeg70.jpg", lambda im: im, 70),  # re-encoded at another quality
    ("half.png", lambda im: im.resize((im.size[0] // 2, im.size[1] // 2), Image.Resampling.BILINEAR), None),
    ("x1.5.jpg", lambda im: im.resize((im.size[0] * 3 // 2, im.size[1] * 3 // 2), Image.Resampling.BICUBIC), 95),
    ("crop2.jpg", lambda im: crop(im, 0.02), 95),  # 2 pixels off each side of 106
)


@dataclass
class Case:
    names: list  # external ids
    files: list | None  # encoded image files (image case)
    images: list | None  # the files decoded
    texts: list | None  # str (text case)
    splits: list
    groups: list  # sets of names: an original and its copies
    originals: list  # the name of each group's original

    def planted(self) -> set:
        """Every (original, copy) pair, as sorted name pairs: each must be found. (Two copies of
        one original are near duplicates of each other too, and usually found; they are in one
        group either way.)"""
        return {tuple(sorted((o, c))) for o, g in zip(self.originals, self.groups, strict=True) for c in g if c != o}

    def group_pairs(self) -> set:
        """Every pair inside a group: the most that may be found."""
        return {(a, b) for g in self.groups for a in g for b in g if a < b}


def image_case(n_originals: int = 8) -> Case:
    """Originals (the first ``n_originals`` textured tiles, stored as JPEG q95) with four copies
    each, a copy in another split than its original; every other tile unrelated."""
    all_tiles = tiles()
    textured = [i for i, t in enumerate(all_tiles) if np.asarray(t.convert("L")).std() >= MIN_TEXTURE_STD]
    originals = textured[:n_originals]
    names, files, splits, groups = [], [], [], []
    for k, tile in enumerate(all_tiles):
        name = f"tile-{k:02d}.jpg"
        data = encode(tile, name)
        names.append(name)
        files.append(data)
        splits.append(SPLITS[k % 3])
        if k not in originals:
            continue
        base = decode(data)
        group = [name]
        for c, (suffix, transform, quality) in enumerate(COPIES):
            copy_name = f"tile-{k:02d}-{suffix}"
            names.append(copy_name)
            files.append(encode(transform(base), copy_name, quality))
            splits.append(SPLITS[(k + 1 + c % 2) % 3])  # never the original's split
            group.append(copy_name)
        groups.append(set(group))
    return Case(
        names=names,
        files=files,
        images=[decode(f) for f in files],
        texts=None,
        splits=splits,
        groups=groups,
        originals=[min(g, key=len) for g in groups],
    )


SENTENCES = (
    "The quarterly report shows revenue growing faster than costs in every region.",
    "Please restart the router before calling support about the outage.",
    "Our cat refuses to eat anything except the expensive salmon pate.",
    "The committee postponed the vote until the budget numbers are confirmed.",
    "A light rain fell over the harbour while the ferries waited to depart.",
    "Update the firmware on all sensors before the calibration run on Monday.",
    "She finished the marathon in under four hours despite the heat.",
    "The recipe calls for two cups of flour and a pinch of sea salt.",
    "Traffic on the northern bypass is slow because of roadworks near exit 12.",
    "The museum extends its opening hours during the summer festival.",
    "He forgot his umbrella on the train and walked home in the storm.",
    "Install the latest security patch to fix the login vulnerability.",
    "The children built a sandcastle that the tide washed away by noon.",
    "Interest rates are expected to stay unchanged until the end of the year.",
    "The library will close early on Friday for staff training.",
    "Our flight was delayed by three hours due to fog at the airport.",
    # Unrelated but close in topic and wording to those above: a fair test of false positives.
    "The quarterly report shows costs growing faster than revenue in two regions.",
    "Please restart the modem before calling the helpdesk about slow internet.",
    "The committee approved the budget after the numbers were confirmed.",
    "Update the software on all laptops before the audit on Tuesday.",
)


def _repunctuate(text: str) -> str:
    """The same words, other punctuation, case and spacing."""
    body = text.rstrip(".").replace(" the ", ", the ", 1)
    return "  " + body.upper() + "!!  "


def _edit(text: str) -> str:
    """One word dropped and smart quotes around another: still the same sentence."""
    words = text.split()
    words.pop(len(words) // 2)
    words[1] = f"\u201c{words[1]}\u201d"
    return " ".join(words)


def text_case() -> Case:
    """Sentences 0..7 get a re-punctuated copy and an edited copy in other splits; the rest
    (8..19, four of them near neighbours in topic and wording) are unrelated."""
    names, texts, splits, groups = [], [], [], []
    for k, sentence in enumerate(SENTENCES):
        name = f"s{k:02d}"
        names.append(name)
        texts.append(sentence)
        splits.append(SPLITS[k % 3])
        if k >= 8:
            continue
        group = [name]
        for c, (label, copy) in enumerate((("punct", _repunctuate(sentence)), ("edit", _edit(sentence)))):
            names.append(f"{name}-{label}")
            texts.append(copy)
            splits.append(SPLITS[(k + 1 + c) % 3])
            group.append(f"{name}-{label}")
        groups.append(set(group))
    return Case(
        names=names,
        files=None,
        images=None,
        texts=texts,
        splits=splits,
        groups=groups,
        originals=[f"s{k:02d}" for k in range(8)],
    )
