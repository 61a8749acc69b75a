"""Memory of the web processes (`make web`'s gunicorn): what each process holds privately, with CLIP
loaded once in gunicorn's master before it forks its workers (WEB_SHARE_MODEL=true, the default) or
by each worker for itself (false).

    .venv/bin/python -m bench.web_memory --models full-random --workers 2
    .venv/bin/python -m bench.web_memory --models full-random --workers 2 --no-share

gunicorn runs on a throwaway SQLite database and var folder. Once it answers, every worker is sent
text and photo searches until each has embedded both (the model's forward passes run in every
worker; the index is empty, so they find nothing). Then, per process, from
/proc/<pid>/smaps_rollup: resident memory (RSS), the proportional share (PSS: shared pages divided
among the processes that map them) and private memory (USS: pages no other process maps), in MB.
"""

import argparse
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load_bench import MODELS, free_port, jpeg  # noqa: E402


def memory(pid: int) -> dict[str, float]:
    """RSS, PSS and USS of a process in MB (smaps_rollup's kB)."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":", 1)
        fields[name] = int(value.split()[0])
    return {
        "rss": fields["Rss"] / 1024,
        "pss": fields["Pss"] / 1024,
        "uss": (fields["Private_Clean"] + fields["Private_Dirty"]) / 1024,
    }


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return sorted(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", choices=sorted(MODELS), default="full-random")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-share", action="store_true", help="WEB_SHARE_MODEL=false: each worker loads CLIP")
    args = parser.parse_args()

    import requests

    work = Path(tempfile.mkdtemp(prefix="imgsearch-web-memory-"))
    port = free_port()
    env = {
        **os.environ,
        **MODELS[args.models],
        "DJANGO_SETTINGS_MODULE": "imgsearch.settings",
        "DATABASE_URL": f"sqlite:////{(work / 'db.sqlite3').as_posix().lstrip('/')}",
        "IMGSEARCH_VAR_DIR": str(work / "var"),
        "MEDIA_ROOT": str(work / "media"),
        "LOG_LEVEL": "WARNING",
        "WEB_WORKERS": str(args.workers),
        "WEB_SHARE_MODEL": "false" if args.no_share else "true",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    subprocess.run([sys.executable, "manage.py", "rebuild_index"], cwd=ROOT, env=env, check=True, capture_output=True)
    token = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; from gallery.tokens import token_create; "
            "print(token_create(user=get_user_model().objects.create_user('bench'), name='bench')[1])",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    started = time.perf_counter()
    with open(work / "web.log", "w") as log:
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "imgsearch/gunicorn_conf.py",
                "imgsearch.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
            if web.poll() is not None:
                sys.exit(f"gunicorn exited: see {work / 'web.log'}")
        answering = time.perf_counter() - started
        headers = {"Authorization": f"Token {token}", "Connection": "close"}  # a new connection: any worker
        photo = jpeg(640, 480, 7)
        statuses: dict[int, int] = {}
        for number in range(12 * args.workers):
            if number % 2:
                response = requests.post(
                    f"{base}/api/search/", files={"image": ("q.jpg", io.BytesIO(photo), "image/jpeg")}, headers=headers
                )
            else:
                response = requests.post(f"{base}/api/search/", json={"text": "a red circle"}, headers=headers)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if number < 2 and response.status_code != 200:
                print("answer:", response.status_code, response.text[:300])
        searched = time.perf_counter() - started
        time.sleep(2)
        workers = children(web.pid)
        rows = [("master", web.pid)] + [(f"worker {n + 1}", pid) for n, pid in enumerate(workers)]
        print(
            f"models={args.models} WEB_WORKERS={args.workers} WEB_SHARE_MODEL={env['WEB_SHARE_MODEL']} "
            f"answering after {answering:.1f} s, {sum(statuses.values())} searches done after {searched:.1f} s "
            f"(statuses {statuses})"
        )
        print(f"{'process':<10} {'RSS MB':>8} {'PSS MB':>8} {'USS MB':>8}")
        total = {"rss": 0.0, "pss": 0.0, "uss": 0.0}
        for name, pid in rows:
            figures = memory(pid)
            for key in total:
                total[key] += figures[key]
            print(f"{name:<10} {figures['rss']:>8.0f} {figures['pss']:>8.0f} {figures['uss']:>8.0f}")
        print(f"{'all':<10} {total['rss']:>8.0f} {total['pss']:>8.0f} {total['uss']:>8.0f}")
    finally:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=30)


if __name__ == "__main__":
    main()
