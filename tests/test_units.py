import pytest

from simcxl.config.units import parse_bandwidth, parse_duration, parse_flop_rate, parse_size


@pytest.mark.parametrize("text, seconds", [
    ("250 ns", 250e-9), ("1.5 us", 1.5e-6), ("2 µs", 2e-6), ("16ms", 16e-3), ("3 s", 3.0), ("1 h", 3600.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text, bytes_per_s", [
    ("64 GB/s", 64e9), ("400 Gb/s", 50e9), ("200 Gbps", 25e9), ("1 GiB/s", 2**30), ("3.35 TB/s", 3.35e12)])
def test_bandwidths(text, bytes_per_s):
    assert parse_bandwidth(text) == pytest.approx(bytes_per_s)


def test_sizes_distinguish_binary_and_decimal_prefixes():
    assert parse_size("80 GiB") == 80 * 2**30
    assert parse_size("80 GB") == 80e9
    assert parse_size("64 B") == 64


def test_flop_rate():
    assert parse_flop_rate("989 TFLOP/s") == pytest.approx(989e12)


@pytest.mark.parametrize("parse, value, fragment", [
    (parse_bandwidth, "64", "like '64 GB/s'"),
    (parse_bandwidth, 64, "bare number"),
    (parse_bandwidth, "64 GB", "unknown bandwidth unit 'GB'"),
    (parse_duration, "3 parsecs", "unknown duration unit"),
    (parse_size, "lots", "expected a size"),
    (parse_size, True, "expected a size"),
    (parse_duration, [1], "expected a duration"),
])
def test_rejects_missing_wrong_or_unknown_units(parse, value, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse(value)
