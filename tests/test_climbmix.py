"""The climbmix path without the internet: parquet shards written here, served over loopback HTTP."""

from __future__ import annotations

import functools
import http.server
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fitness import data, datasets

TEXTS = [f"Document {i}: the quick brown fox number {i} jumps over {i % 7} lazy dogs.\n" * 3 for i in range(400)]


@pytest.fixture
def shard_server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    for index, texts in (
        (0, TEXTS[:300]),
        (datasets.CLIMBMIX_TEST_SHARD, TEXTS[300:350]),
        (datasets.CLIMBMIX_VAL_SHARD, TEXTS[350:]),
    ):
        pq.write_table(pa.table({"text": texts}), served / datasets.shard_name(index))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_climbmix_shards_download_tokenize_and_pin_val_and_test(shard_server, tmp_path, monkeypatch):
    monkeypatch.setenv("EVOLVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("EVOLVE_CLIMBMIX_URL", shard_server)
    cache = data.prepare("climbmix", 300, (32,), num_shards=1)
    assert sorted(p.name for p in cache.shard_dir.glob("*.parquet")) == [
        "shard_00000.parquet",
        "shard_06541.parquet",
        "shard_06542.parquet",
    ]
    assert len(cache.rows("val", 32)) > 0 and len(cache.rows("train", 32)) > 0
    assert len(cache.tokens("val")) < len(cache.tokens("train"))
    assert cache.identity()["num_shards"] == 1


def test_failed_download_is_one_clear_error_naming_the_url(shard_server, tmp_path):
    with pytest.raises(datasets.DatasetError) as error:
        datasets.download_shard(17, tmp_path, base_url=shard_server, attempts=1)
    message = str(error.value)
    assert "shard_00017.parquet" in message and "\n" not in message
    assert not list(tmp_path.glob("*.part"))  # nothing half-written is left behind


def test_climbmix_needs_at_least_one_training_shard(tmp_path, monkeypatch):
    monkeypatch.setenv("EVOLVE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(datasets.DatasetError, match="--num-shards"):
        data.prepare("climbmix", 300, (32,), num_shards=0)
