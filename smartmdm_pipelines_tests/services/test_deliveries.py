"""Issue 9, items 2, 3 and 7 on both backends: compressed deliveries (each member a delivery of its
own), what inspect tells per channel and quality class, copy versus move, empty deliveries."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import pytest

from smartmdm_pipelines.config import load_config
from smartmdm_pipelines.services.ingestion import ingest_file, ingest_path, inspect_path
from smartmdm_pipelines.store.store import Store
from smartmdm_pipelines_tests.fixtures import INTERVAL_HEADER, cmep_line, interval_file, nem12_text

US_DST_DAYS = ["20240309", "20240310", "20240311", "20240312"]


@pytest.fixture
def config(tmp_path: Path):
    return load_config(data_dir=tmp_path / "data")


def zip_file(path: Path, members: dict[str, bytes | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def registry(store: Store):
    return store.read_frame(
        "SELECT file_id, name, status, source, rows_in, rows_loaded, rows_rejected, archive_path, error "
        "FROM headend_files ORDER BY file_id"
    )


# -- item 2: compressed deliveries ------------------------------------------------------------------
def test_each_zip_member_is_a_delivery_and_the_zip_is_archived_once(store: Store, config, tmp_path) -> None:
    csv = interval_file(tmp_path / "src" / "ami-east_20240311.csv", ["E1"], "2024-03-11").read_text()
    path = zip_file(
        config.landing_dir / "NEM12#0001#MDPX#RETAILER.ZIP",  # upper-case extension, as AEMO sends them
        {"ami-south_20240309.csv": nem12_text(US_DST_DAYS), "day/ami-east_20240311.csv": csv},
    )
    summaries = ingest_path(store, path, config)
    assert [s.status for s in summaries] == ["loaded", "loaded"]
    assert [s.interval_reads for s in summaries] == [768, 96]
    rows = registry(store)
    assert rows["name"].tolist() == [
        "NEM12#0001#MDPX#RETAILER.ZIP!ami-south_20240309.csv",
        "NEM12#0001#MDPX#RETAILER.ZIP!day/ami-east_20240311.csv",
    ]
    assert rows["source"].tolist() == ["ami-south", "ami-east"]  # each member's own source
    assert (rows["rows_in"] == rows["rows_loaded"] + rows["rows_rejected"]).all()
    assert store.count("raw_reads") == 768 + 96
    archived = list((config.archive_dir).rglob("*RETAILER.ZIP"))
    assert len(archived) == 1 and not path.exists()  # the original, once
    assert rows["archive_path"].unique().tolist() == [str(archived[0])]
    assert all(s.container == str(path) for s in summaries)

    again = zip_file(config.landing_dir / "resent.zip", {"ami-south_20240309.csv": nem12_text(US_DST_DAYS)})
    resent = ingest_path(store, again, config)
    assert [s.status for s in resent] == ["duplicate"] and resent[0].duplicate_of == 1
    assert store.count("headend_files") == 2
    assert any((config.archive_dir / "duplicates").glob("*resent.zip"))


def test_a_gz_file_is_one_delivery(store: Store, config, tmp_path) -> None:
    text = interval_file(tmp_path / "x.csv", ["G1", "G2"], "2024-03-12").read_bytes()
    path = config.landing_dir / "ami-east_20240312.csv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text))
    (summary,) = ingest_path(store, path, config)
    assert summary.status == "loaded" and summary.interval_reads == 192
    assert registry(store)["name"].tolist() == ["ami-east_20240312.csv.gz!ami-east_20240312.csv"]


def test_a_member_with_a_path_outside_the_archive_is_rejected_and_the_others_load(
    store: Store, config, tmp_path
) -> None:
    good = interval_file(tmp_path / "g.csv", ["E1"], "2024-03-11").read_text()
    path = zip_file(
        config.landing_dir / "mixed.zip",
        {"../evil.csv": good, "/etc/abs.csv": good, "ok.csv": good, "inner.zip": _zip_bytes({"a.csv": good})},
    )
    summaries = ingest_path(store, path, config)
    by_name = {s.file.rsplit("!", 1)[-1]: s for s in summaries}
    assert by_name["ok.csv"].status == "loaded"
    assert "climbs out of the archive with '..'" in by_name["../evil.csv"].errors[0]["reason"]
    assert "is absolute" in by_name["/etc/abs.csv"].errors[0]["reason"]
    assert "is itself a zip archive" in by_name["inner.zip"].errors[0]["reason"]
    rows = registry(store).set_index("name")
    assert rows.loc["mixed.zip!../evil.csv", "status"] == "rejected"
    assert "'..'" in rows.loc["mixed.zip!../evil.csv", "error"]
    assert (
        not (tmp_path / "data" / "evil.csv").exists()
        and not (config.landing_dir.parent / "evil.csv").exists()
    )
    assert store.count("raw_reads") == 96
    assert store.count("rejected_rows") == 3  # one per rejected member: nothing silently lost


def test_a_zip_bomb_is_rejected_with_its_reason(store: Store, config) -> None:
    # 64 MiB of zeros compresses about a thousand times: past the 100x ratio once beyond 10 MiB
    path = config.landing_dir / "bomb.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with (
        zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("reads.csv", "w") as member,
    ):
        member.write(INTERVAL_HEADER.encode())
        for _ in range(64):
            member.write(b"0" * (1 << 20))
    (summary,) = ingest_path(store, path, config)
    assert summary.status == "rejected"
    reason = summary.errors[0]["reason"]
    assert "expands more than 100 times its compressed size" in reason and "zip bomb" in reason
    assert store.count("raw_reads") == 0 and any(config.quarantine_dir.glob("*bomb.zip"))


def test_too_many_members_a_broken_or_an_empty_zip_reject_the_container(store: Store, config) -> None:
    config.landing.unpack.max_members = 3
    many = zip_file(config.landing_dir / "many.zip", {f"m{i}.csv": INTERVAL_HEADER for i in range(4)})
    (summary,) = ingest_path(store, many, config)
    assert (
        summary.status == "rejected"
        and "holds 4 members, more than the limit of 3" in summary.errors[0]["reason"]
    )
    broken = config.landing_dir / "broken.zip"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    (summary,) = ingest_path(store, broken, config)
    assert summary.status == "rejected" and "not a readable ZIP archive" in summary.errors[0]["reason"]
    empty = zip_file(config.landing_dir / "empty.zip", {})
    (summary,) = ingest_path(store, empty, config)
    assert summary.status == "rejected" and "holds no file" in summary.errors[0]["reason"]
    assert registry(store)["name"].tolist() == ["many.zip", "broken.zip", "empty.zip"]


def test_inspect_opens_a_zip_without_loading(config, tmp_path) -> None:
    path = zip_file(tmp_path / "NEM12#0002.zip", {"NEM12#0002.csv": nem12_text(US_DST_DAYS)})
    (summary,) = inspect_path(path, config)
    assert summary.format == "nem12" and summary.status == "loaded" and summary.interval_reads == 768
    assert summary.file == f"{path}!NEM12#0002.csv" and summary.container == str(path)
    assert path.exists()


# -- item 3: inspect tells what it saw ----------------------------------------------------------------
def test_channels_detail_counts_quality_classes_and_no_read_placeholders(config, tmp_path) -> None:
    path = tmp_path / "ami-east_20240309.txt"
    path.write_text(
        cmep_line(
            "B1",
            "202403090015",
            ["R0", "R0", "N32", "R0", "E1", "R0", "N", "R0"],
            ["1", "2", "0", "3", "4", "5", "0", "6"],
        )
    )
    (summary,) = inspect_path(path, config)
    # the N32 and N placeholders that carry a 0 are loaded as no-reads, and shown as such
    assert summary.channels_detail == [detail("kwh_delivered", "kWh", actual=5, estimated=1, no_read=2)]


def test_channels_detail_shows_converted_units_and_empty_values(config, tmp_path) -> None:
    path = tmp_path / "w.csv"
    path.write_text(
        INTERVAL_HEADER
        + "W1,water,2024-03-10T06:00:00Z,3600,1.5,CCF,\n"
        + "W1,water,2024-03-10T07:00:00Z,3600,,CCF,\n"
        + "G1,gas,2024-03-10T07:00:00Z,3600,2,therm,E\n"
    )
    (summary,) = inspect_path(path, config)
    assert summary.channels_detail == [
        detail("gas", "therm", actual=0, estimated=1, no_read=0),
        detail("water", "gal", actual=1, estimated=0, no_read=1),  # CCF converted; the empty value a no-read
    ]


def detail(channel: str, unit: str, *, actual: int, estimated: int, no_read: int) -> dict:
    reads = actual + estimated + no_read
    counts = {"reads": reads, "actual": actual, "estimated": estimated, "no_read": no_read}
    return {"channel": channel, "record": "interval", "unit": unit, **counts}


# -- item 7: copy from outside landing; empty deliveries ------------------------------------------------
def test_a_file_outside_landing_is_copied_to_the_archive_and_stays(store: Store, config, tmp_path) -> None:
    mine = interval_file(tmp_path / "downloads" / "reads.csv", ["E1"], "2024-03-11")
    before = mine.read_bytes()
    summary = ingest_file(store, mine, config)
    assert summary.status == "loaded"
    assert mine.exists() and mine.read_bytes() == before  # the user's file is untouched
    assert (
        Path(summary.archived_to).read_bytes() == before
        and config.archive_dir in Path(summary.archived_to).parents
    )
    landed = interval_file(config.landing_dir / "ami-east_x.csv", ["E2"], "2024-03-11")
    ingest_file(store, landed, config)
    assert not landed.exists()  # files in the landing folder keep being moved


def test_empty_files_of_two_head_ends_are_two_empty_deliveries(store: Store, config) -> None:
    config.landing_dir.mkdir(parents=True, exist_ok=True)
    east = config.landing_dir / "ami-east_20240308_intervals.csv"
    water = config.landing_dir / "ami-water_20240308_intervals.csv"
    east.write_text(INTERVAL_HEADER)
    water.write_text(INTERVAL_HEADER)  # byte for byte the same as east's
    first, second = ingest_file(store, east, config), ingest_file(store, water, config)
    assert (first.status, second.status) == ("empty", "empty")
    assert second.duplicate_of is None and first.sha256 != second.sha256
    rows = registry(store)
    assert rows["source"].tolist() == ["ami-east", "ami-water"]
    assert rows["status"].tolist() == ["empty", "empty"] and rows["rows_in"].tolist() == [0, 0]
    # the same empty file of the same head-end, delivered again, is a duplicate
    east.write_text(INTERVAL_HEADER)
    assert ingest_file(store, east, config).status == "duplicate"
    assert store.count("headend_files") == 2


def _zip_bytes(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()
