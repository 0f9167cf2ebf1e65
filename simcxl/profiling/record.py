"""Where a calibration script's measurements go, the machine they came from, and its command line.

Each script writes ``DIR/NAME.csv`` and ``DIR/NAME_info.json`` (the GPU, PyTorch, CUDA and date it ran
on, plus the script's own settings), so a committed CSV always says which machine produced it.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path
from typing import Callable


def machine() -> dict:
    """The GPU, PyTorch and CUDA a measurement ran on, and the date."""
    import torch

    return {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "date": datetime.date.today().isoformat()}


def write(out_dir: Path, name: str, rows: list[str], **settings) -> dict:
    """``rows`` (CSV lines, header first) as DIR/NAME.csv; the machine and ``settings`` as DIR/NAME_info.json."""
    (out_dir / f"{name}.csv").write_text("\n".join(rows) + "\n")
    info = {**machine(), **settings}
    (out_dir / f"{name}_info.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def command_line(doc: str, measure: Callable[[Path], dict]) -> None:
    """``python -m ... -o DIR``: run ``measure(DIR)`` and print what it returns."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    print(json.dumps(measure(parser.parse_args().output)))
