"""A real S3 API for tests: moto's server mode, a process of its own on a free port, speaking S3 over
HTTP to django-storages' S3Storage (boto3) as AWS, MinIO or Ceph would. Tests take it from the
`s3_server` and `s3_storage` fixtures (tests/conftest.py)."""

import json
import subprocess
import sys
import time
import urllib.request
import uuid

from tests.servers import free_port


class S3Server:
    KEYS = {"access_key": "test-key", "secret_key": "test-secret", "region_name": "us-east-1"}

    def __init__(self):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=2):
                    return
            except OSError:
                assert self.process.poll() is None and time.monotonic() < deadline, "moto's server did not start"
                time.sleep(0.2)

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.KEYS["access_key"],
            aws_secret_access_key=self.KEYS["secret_key"],
            region_name=self.KEYS["region_name"],
        )

    def new_bucket(self) -> dict:
        """A fresh bucket; S3Storage's OPTIONS for it (what MEDIA_STORAGE_OPTIONS would hold)."""
        name = f"photos-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return {"bucket_name": name, "endpoint_url": self.url, "default_acl": "private", **self.KEYS}

    def names(self, bucket: str, prefix: str = "") -> list[str]:
        listing = self.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    @staticmethod
    def environment(options: dict) -> dict:
        """The variables a web server or worker on this bucket is started with."""
        return {"MEDIA_STORAGE": "storages.backends.s3.S3Storage", "MEDIA_STORAGE_OPTIONS": json.dumps(options)}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
