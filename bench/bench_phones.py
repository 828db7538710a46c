"""Throughput of phone normalization on a realistic Israeli recipient list.

The ingest budget (100,000 recipients in 2.5 s) leaves roughly 10 µs per number for
normalization, so this prints numbers/s for a mixed list shaped like real uploads.

Usage: ``python bench/bench_phones.py [--baseline]``. ``--baseline`` also prints the rate of
plain ``phonenumbers.parse`` + ``is_valid_number`` + ``format_number`` on the same inputs.
"""

import random
import statistics
import sys
import time
from collections.abc import Callable

import phonenumbers

from wabroadcast.domain.phones import normalize_many

COUNT = 100_000
SEED = 20_240_501
RUNS = 3

_MOBILE_PREFIXES = ("50", "52", "53", "54", "58")
_AREA_CODES = ("2", "3", "4", "8", "9")


def _national_significant(rng: random.Random) -> str:
    """A valid-looking IL national significant number: 85% mobile, 15% landline."""
    if rng.random() < 0.85:
        prefix, size = rng.choice(_MOBILE_PREFIXES), 9
    else:
        prefix, size = rng.choice(_AREA_CODES), 8
    rest = rng.choices("0123456789", k=size - len(prefix) - 1)
    return prefix + rng.choice("34567") + "".join(rest)


def _spell(nsn: str, rng: random.Random) -> str:
    head, mid, tail = nsn[:-7], nsn[-7:-4], nsn[-4:]
    shapes = (
        f"0{nsn}",
        f"0{head}-{mid}-{tail}",
        f"0{head}-{mid}{tail}",
        f"(0{head}) {mid} {tail}",
        f"0{head}.{mid}.{tail}",
        f"+972{nsn}",
        f"+972 {head}-{mid}-{tail}",
        f"+972-{head}-{mid}{tail}",
        f"00972{nsn}",
        f"972{nsn}",
    )
    return rng.choice(shapes)


def make_inputs(count: int = COUNT, seed: int = SEED) -> list[str]:
    """Mixed IL spellings; about 2% are junk (truncated, letters, too long)."""
    rng = random.Random(seed)
    inputs: list[str] = []
    for _ in range(count):
        raw = _spell(_national_significant(rng), rng)
        roll = rng.random()
        if roll < 0.01:
            raw = raw[:-3]
        elif roll < 0.015:
            raw = raw + "123456"
        elif roll < 0.02:
            raw = "ext " + raw
        inputs.append(raw)
    return inputs


def _rate(run: Callable[[list[str]], object], inputs: list[str]) -> float:
    run(inputs[:1000])
    timings = []
    for _ in range(RUNS):
        start = time.perf_counter()
        run(inputs)
        timings.append(time.perf_counter() - start)
    return len(inputs) / statistics.median(timings)


def _baseline(inputs: list[str]) -> None:
    e164 = phonenumbers.PhoneNumberFormat.E164
    for raw in inputs:
        try:
            number = phonenumbers.parse(raw, "IL")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            phonenumbers.format_number(number, e164)


def main() -> None:
    """Print the normalization rate (and optionally the plain phonenumbers rate)."""
    inputs = make_inputs()
    rate = _rate(lambda raws: normalize_many(raws, "IL"), inputs)
    print(f"phone_normalize_per_s: {rate:.0f} numbers/s")
    if "--baseline" in sys.argv[1:]:
        slow = _rate(_baseline, inputs)
        print(f"phonenumbers_parse_per_s: {slow:.0f} numbers/s")


if __name__ == "__main__":
    main()
