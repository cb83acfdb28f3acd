"""Recorders that fill a recording folder the way rosbag2 does, split by split, from real mcap files.

`SplitRecorder` first writes a real recording with our `BagWriter` (split by duration, the
distro's metadata version) into a staging folder, then plays it into the watched folder as the
recorder of that distro would, one step at a time (the test decides when):

- the split being written sits under its final name `<name>_<n>.mcap` and grows (its first half,
  no footer yet: exactly what a reader sees of a file rosbag2 is still writing);
- a split finishes (the rest of its bytes, ending with the footer) before the next one appears;
- `humble`: metadata.yaml appears only at `stop()` (rosbag2 Humble writes it once, when recording ends);
- `jazzy`: metadata.yaml is rewritten at every split, naming the files so far including the one just
  opened, so its presence proves nothing about the recording having stopped.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from roadloop_core.bag import BagWriter
from roadloop_core.bag.metadata import dump_metadata, parse_metadata
from roadloop_core.codec import numpy_to_image
from roadloop_core.fsio import atomic_write_text

CAMERA = "/sensors/camera/front/image"
FRAMES_PER_SPLIT = 10  # at 10 Hz with 1-second splits


class SplitRecorder:
    def __init__(self, watch: Path, staging: Path, name: str, distro: str, splits: int, seed: int = 0) -> None:
        self.distro, self.name = distro, name
        self.source = staging / name
        rng = np.random.default_rng(seed)
        with BagWriter(self.source, distro=distro, compression="none", max_duration_s=1.0) as w:
            w.add_topic(CAMERA, "sensor_msgs/msg/Image")
            for i in range(splits * FRAMES_PER_SPLIT):
                stamp = 1_000_000_000_000 + i * 100_000_000
                img = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
                w.write_msg(CAMERA, stamp, numpy_to_image(img, stamp, "camera"))
        self.files = [f"{name}_{i}.mcap" for i in range(splits)]
        assert sorted(p.name for p in self.source.glob("*.mcap")) == sorted(self.files)
        self.metadata = (self.source / "metadata.yaml").read_text(encoding="utf-8")
        self.messages = splits * FRAMES_PER_SPLIT
        self.folder = watch / name
        self.current = -1  # the split being written

    def _open(self, i: int) -> None:
        data = (self.source / self.files[i]).read_bytes()
        (self.folder / self.files[i]).write_bytes(data[: len(data) // 2])
        self.current = i
        if self.distro != "humble":
            self._write_metadata(i + 1)

    def _finish(self, i: int) -> None:
        data = (self.source / self.files[i]).read_bytes()
        with open(self.folder / self.files[i], "ab") as f:
            f.write(data[len(data) // 2 :])

    def _write_metadata(self, n_files: int) -> None:
        final = parse_metadata(self.metadata, "staged metadata.yaml")
        files = final.files[:n_files]
        partial = replace(
            final,
            relative_file_paths=final.relative_file_paths[:n_files],
            files=files,
            message_count=sum(f.message_count for f in files),
        )
        atomic_write_text(self.folder / "metadata.yaml", dump_metadata(partial))

    def start(self) -> None:
        self.folder.mkdir(parents=True)
        self._open(0)

    def split(self) -> None:
        """Finish the split being written and open the next (rosbag2's order: close, then open)."""
        self._finish(self.current)
        self._open(self.current + 1)

    def stop(self) -> None:
        """Finish the last split and write the final metadata.yaml (what `ros2 bag record` does on Ctrl-C)."""
        assert self.current == len(self.files) - 1, "stop() after the last split was opened"
        self._finish(self.current)
        atomic_write_text(self.folder / "metadata.yaml", self.metadata)
