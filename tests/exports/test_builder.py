"""Export files are built once per state update across every API process over the same store."""

import threading

from hyperscope.exports.builder import Exports
from hyperscope.exports.storage import LocalFiles

SECRET = b"a-secret-of-at-least-16-bytes"


def test_two_workers_over_one_folder_build_each_file_once_even_at_the_same_moment(tmp_path):
    workers = [Exports(LocalFiles(tmp_path, 1 << 20), 100, None, SECRET) for _ in range(2)]
    builds = []
    gate = threading.Barrier(8)

    def build():
        builds.append(1)
        return b"the file"

    def request(worker):
        gate.wait()
        return worker.get_or_build("positions.csv", "BTC", 7, "k1", build, "csv")

    ids = []
    threads = [threading.Thread(target=lambda w=workers[i % 2]: ids.append(request(w))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1 and len(set(ids)) == 1
    assert (tmp_path / ids[0]).read_bytes() == b"the file"
    # the next state update is another file; another secret (another deployment) names it otherwise
    assert workers[1].get_or_build("positions.csv", "BTC", 8, "k1", build, "csv") != ids[0]
    assert len(builds) == 2
    other = Exports(LocalFiles(tmp_path, 1 << 20), 100, None, b"another-secret-of-16-bytes")
    assert other.file_id("positions.csv", "BTC", 7, "csv") != ids[0]


def test_a_file_past_the_byte_cap_is_refused_alike_by_every_worker_and_reused_when_built(tmp_path):
    import pytest

    from hyperscope.errors import RetryLater

    workers = [Exports(LocalFiles(tmp_path, 100), 100, None, SECRET) for _ in range(2)]
    first = workers[0].get_or_build("a.json", "", 1, "k1", lambda: b"x" * 80, "json")
    assert workers[1].get_or_build("a.json", "", 1, "k1", lambda: b"never built", "json") == first  # no copy
    for worker in workers:
        with pytest.raises(RetryLater, match="full"):
            worker.get_or_build("b.json", "", 1, "k1", lambda: b"y" * 80, "json")
