"""Image folders in a generated image_folder project against plain Python, on one core, and print a markdown table.

1. decoding: images/s of the project's training sample (decode, resize to 224 px, random shift, normalise) against a
   plain Pillow loop doing the same work (`Image.open(path).convert("RGB").resize(...)`, the same shift and scaling),
   on photos of ImageNet's typical size and of a phone camera's;
2. start-up: listing a class-per-folder tree of 50,000 files and decoding the first batch of 64, what comes before
   the first training step, against walking the same tree with `os.scandir`; and, for scale, what the template did
   before (open and `verify()` every file).

Every timing is repeated, interleaved with its baseline, and reported as median (min-max). The page cache is warm.
`python benchmarks/images.py --help` lists the options.
"""

import argparse
import importlib
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image
from report import Row, Spread, machine_description, markdown_table
from run import copy_template, timed
from sklearn.datasets import load_sample_images

PACKAGE = "lightning_project"
SIZE = 224
PHOTOS = {"ImageNet-sized JPEG, 500x375": (500, 375), "camera JPEG, 4032x3024": (4032, 3024)}


def render_image_project(work: Path) -> Path:
    """The image_folder answer of the working tree's template, rendered; returns its src folder."""
    template = copy_template(Path(tempfile.mkdtemp(dir=work)))
    project = work / "project"
    timed(
        [
            "copier",
            "copy",
            "--defaults",
            "--trust",
            "--quiet",
            "--data",
            "dataset=image_folder",
            str(template),
            str(project),
        ]
    )
    return project / "src"


def write_photos(folder: Path, size: tuple[int, int], count: int) -> list[str]:
    """`count` JPEGs cut from scikit-learn's two sample photos at random places, scaled to `size`."""
    generator = np.random.default_rng(0)
    photos = load_sample_images().images
    paths = []
    for index in range(count):
        photo = photos[index % 2]
        top, left = generator.integers(0, 100, size=2)
        crop = Image.fromarray(photo[top : top + 320, left : left + 427]).resize(size, Image.Resampling.BICUBIC)
        path = folder / f"{index % 2}" / f"{index}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        crop.save(path, quality=90)
        paths.append(str(path))
    return paths


def plain_sample(path: str) -> np.ndarray:
    """What a hand-written Dataset does: decode at full size, convert, resize, the same shift and scaling."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR))
    shift = SIZE // 8
    top, left = np.random.randint(0, 2 * shift + 1, size=2)
    padded = np.pad(pixels, ((shift, shift), (shift, shift), (0, 0)), mode="edge")
    return (padded[top : top + SIZE, left : left + SIZE].transpose(2, 0, 1).astype(np.float32) / 127.5) - 1


def images_per_second(read: Callable[[int], object], count: int) -> float:
    """Per second of this process's CPU time: on a shared machine, time spent waiting for a core does not count."""
    start = time.process_time()
    for index in range(count):
        read(index)
    return count / (time.process_time() - start)


def decoding_rows(preprocess: object, work: Path, count: int, repeats: int) -> list[Row]:
    rows = []
    for name, size in PHOTOS.items():
        paths = write_photos(work / name.split()[0], size, count)
        images = preprocess.list_image_folder(Path(paths[0]).parents[1])
        dataset = preprocess.ImageDataset(preprocess.Preprocessor(images.class_names, SIZE), images, augment=True)
        ours, plain = [], []
        for _ in range(repeats):
            ours.append(images_per_second(dataset.__getitem__, len(dataset)))
            plain.append(images_per_second(lambda index, images=images: plain_sample(images.path(index)), len(images)))
        generated, baseline = Spread.of(ours), Spread.of(plain)
        ratio = generated.median / baseline.median
        rows.append(
            Row(
                f"decode + resize {SIZE} px + shift + normalise, {name}: images/s of CPU time, one core",
                generated.show("images/s", 0),
                baseline.show("images/s", 0),
                f"{ratio:.2f}x",
                ">= 1.00x",
                "met" if ratio >= 1 else "missed",
            )
        )
    return rows


def write_tree(root: Path, files: int, classes: int = 10) -> None:
    """`files` small JPEGs in `classes` folders: 16 different images, written as bytes (fast to make)."""
    variants = []
    for seed in range(16):
        buffer = io.BytesIO()
        pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(buffer, "JPEG")
        variants.append(buffer.getvalue())
    for index in range(files):
        folder = root / f"class_{index % classes:02d}"
        if index < classes:
            folder.mkdir(parents=True)
        (folder / f"{index:06d}.jpg").write_bytes(variants[index % 16])


def scandir_walk(root: Path) -> list[str]:
    """The baseline: every file path of the tree, nothing else."""
    paths, folders = [], [str(root)]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                (folders if entry.is_dir() else paths).append(entry.path)
    return paths


def verify_every_file(root: Path) -> int:
    """What the template did before: open and verify() each file while setting up."""
    count = 0
    for path in scandir_walk(root):
        with Image.open(path) as image:
            image.verify()
        count += 1
    return count


def startup_rows(preprocess: object, work: Path, files: int, repeats: int) -> list[Row]:
    root = work / "tree"
    write_tree(root, files)

    def seconds(function: Callable[[], object]) -> float:
        start = time.perf_counter()
        function()
        return time.perf_counter() - start

    def first_batch() -> None:
        images = preprocess.list_image_folder(root)
        dataset = preprocess.ImageDataset(preprocess.Preprocessor(images.class_names, 32), images, augment=True)
        np.stack([dataset[int(index)]["inputs"][0] for index in np.random.permutation(len(dataset))[:64]])

    scandir_walk(root)  # warms the page cache and the directory entries
    listing, plain, first = [], [], []
    for _ in range(repeats):
        listing.append(seconds(lambda: preprocess.list_image_folder(root)))
        plain.append(seconds(lambda: scandir_walk(root)))
        first.append(seconds(first_batch))
    verified = Spread.of([seconds(lambda: verify_every_file(root))])
    ours, baseline = Spread.of(listing), Spread.of(plain)
    ratio = ours.median / baseline.median
    return [
        Row(
            f"start-up, {files:,} files: list the class folders (by extension, sorted), wall time",
            ours.show(digits=3),
            baseline.show(digits=3),
            f"{ratio:.2f}x `os.scandir` walk",
            "<= 2.00x",
            "met" if ratio <= 2 else "missed",
        ),
        Row(
            f"start-up, {files:,} files: list, then decode the first batch of 64 (32 px JPEGs), wall time",
            Spread.of(first).show(digits=3),
            baseline.show(digits=3),
            f"{Spread.of(first).median / baseline.median:.2f}x `os.scandir` walk",
            "",
            "",
        ),
        Row(
            f"start-up, {files:,} files, before this release: open and `verify()` every file, wall time",
            verified.show(digits=2),
            baseline.show(digits=3),
            f"{verified.median / baseline.median:.0f}x `os.scandir` walk",
            "",
            "",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each timing (default 5)")
    parser.add_argument("--photos", type=int, default=100, help="photos of each size decoded per repeat (default 100)")
    parser.add_argument("--files", type=int, default=50_000, help="files of the start-up tree (default 50000)")
    args = parser.parse_args()
    machine = machine_description({name: version(name) for name in ("pillow", "numpy")})
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    np.random.seed(0)
    with tempfile.TemporaryDirectory(prefix="copier-lightning-images-") as folder:
        work = Path(folder)
        sys.path.insert(0, str(render_image_project(work)))
        preprocess = importlib.import_module(f"{PACKAGE}.preprocess")
        rows = decoding_rows(preprocess, work, args.photos, args.repeats)
        rows += startup_rows(preprocess, work, args.files, args.repeats)
    print(markdown_table(rows))
    print()
    print(f"Machine: {machine}; run on one core (affinity), warm page cache.")
    print(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python benchmarks/images.py`.")


if __name__ == "__main__":
    main()
