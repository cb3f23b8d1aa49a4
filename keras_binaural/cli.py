"""Command-line helpers shared by the tools: flag errors and library errors as one line.

The tools are thin absl programs (`tools/*.py`); on bad input each prints one line naming the
flag, config key or file and exits with status 1. `flags_parser` does that for the flags absl and
ml_collections refuse while parsing (`app.run(main, flags_parser=cli.flags_parser("train"))`);
`one_line` folds a multi-line library message into one; `parse_size_wh` reads a frame-size flag.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from absl import flags as absl_flags


def parse_size_wh(text: str, flag: str = "--frame_size", error: type[Exception] = ValueError,
                  minimum: int = 1, example: str = "128x128") -> tuple[int, int]:
    """A frame size flag, "WxH" (e.g. 128x128) or "N" for a square, -> (width, height) in pixels.

    Raises:
      error: naming `flag`: not a size, or a side below `minimum` pixels.
    """
    parts = str(text).lower().split("x")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(part.strip().isdigit() for part in parts):
        raise error(f"{flag}={text!r}: want WIDTHxHEIGHT in pixels, e.g. {example}")
    width, height = (int(part) for part in parts)
    if width < minimum or height < minimum:
        raise error(f"{flag}={text!r}: width and height must be >= {minimum} pixels")
    return width, height


def one_line(text, limit: int = 400) -> str:
    """`text` (e.g. an exception) on one line: its non-empty lines joined by "; ", cut to
    `limit` characters."""
    line = "; ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def explain_flag_error(error: Exception, argv: Sequence[str]) -> str:
    """One line for a flag that absl or ml_collections refused while parsing `argv`.

    A misspelt config override (`--config.train.epoch=3`) names the flag and the key it probably
    meant; an error raised inside a config file (e.g. an unknown variant) gives that error's own
    message; anything else its first line.
    """
    text = str(error)
    if isinstance(error, (AttributeError, KeyError)):
        guess = re.search(r'Did you mean "([^"]+)"', text)
        bad = re.search(r"'([^'\\]+)\\?'", text)
        key = bad.group(1) if bad else "?"
        # The whole flag, e.g. --config.optimizer.learning_rate for the missing key "optimizer".
        flag = next((arg.split("=")[0] for arg in argv
                     if arg.startswith("--config.") and re.search(rf"\.{re.escape(key)}(\.|=|$)",
                                                                   arg.split("=")[0])), None)
        hint = f"; did you mean {guess.group(1)!r}?" if guess else ""
        return f"{flag or '--config.…'}: the config has no key {key!r}{hint}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "Traceback" in text and lines:  # an exception inside the config file: its last line
        last = lines[-1]
        return re.sub(r"^\w+(Error|Exception): ", "", last)
    return lines[0] if lines else type(error).__name__


def flags_parser(program: str) -> Callable[[list[str]], list[str]]:
    """An `app.run(..., flags_parser=...)` that turns a flag error into one line and exit 1."""

    def parse(argv: list[str]) -> list[str]:
        try:
            return absl_flags.FLAGS(argv)
        except (absl_flags.Error, AttributeError, KeyError, ValueError, TypeError) as error:
            raise SystemExit(f"{program}: error: {explain_flag_error(error, argv)}") from None

    return parse
