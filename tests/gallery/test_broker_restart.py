"""A Redis broker that restarts forgets its queued tasks (nothing is kept on disk): the worker's sweep
notices (Redis's run_id changes) and queues their images again at once, not QUEUE_LOST_SECONDS later.
A Redis server of the test's own, on a free port, is started, stopped and started again; the
machine's Redis is never touched."""

import shutil
import socket
import subprocess
import time
import uuid

import pytest
from django_q.conf import Conf

from gallery.models import Image
from gallery.services import image_create
from gallery.work_queue import BrokerWatch, images_recover, queued_image_ids
from tests import images
from tests.conftest import upload_file
from tests.servers import free_port


class OwnRedis:
    def __init__(self, tmp_path):
        self.port, self.dir, self.process = free_port(), tmp_path, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path, monkeypatch):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = OwnRedis(tmp_path)
    server.start()
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "ORM", None)
    monkeypatch.setattr(Conf, "REDIS", server.url)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", f"test-{uuid.uuid4().hex[:8]}")
    yield server
    if server.process.poll() is None:
        server.stop()


def test_a_restarted_redis_has_its_lost_tasks_queued_again_at_the_next_sweep(
    owner, own_redis, django_capture_on_commit_callbacks
):
    watch = BrokerWatch()
    assert watch.restarted() is False  # the first look only learns who the broker is
    with django_capture_on_commit_callbacks(execute=True):
        image = image_create(owner=owner, upload=upload_file(images.png(seed=1), "1.png")).image
    assert queued_image_ids() == [image.pk] and watch.restarted() is False
    own_redis.stop()
    assert watch.restarted() is False  # away: nothing to tell yet
    own_redis.start()  # back, empty
    assert queued_image_ids() == []
    assert images_recover().requeued == []  # on its own, recovery would wait QUEUE_LOST_SECONDS
    assert watch.restarted() is True
    with django_capture_on_commit_callbacks(execute=True):
        assert images_recover(starting=True).requeued == [image.pk]
    assert queued_image_ids() == [image.pk] and Image.objects.get(pk=image.pk).status == "pending"
    assert watch.restarted() is False  # the same server since
