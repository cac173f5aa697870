#!/usr/bin/env python3
"""A stand-in for huggingface.co on 127.0.0.1, for llmscope's hub tests.

Serves the URLs llmscope pull uses, with the headers the real hub sends:
  GET  /api/models/{repo}/revision/{rev}  -> {"id", "sha", "siblings": [{"rfilename"}]}
  HEAD/GET /{repo}/resolve/{commit}/{file}
       regular files: 200, ETag = git blob id, X-Repo-Commit
       LFS files (*.safetensors): 302 to /cdn/{sha256}, ETag = git id of the pointer file,
       X-Linked-Etag = sha256, X-Linked-Size, X-Repo-Commit
  GET  /cdn/{sha256}                      -> the bytes, honouring Range
Errors carry X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) as the
real hub does.

Configured by a JSON file (--config):
  {"repos": {"gpt2": {"revisions": {"main": COMMIT, "v1.0": COMMIT2},
                      "commits": {COMMIT: {"config.json": "/abs/path", ...}}}},
   "cut": ["model.safetensors"],      # first GET stops halfway, closing the connection
   "corrupt": ["model.safetensors"],  # bytes served differ from the advertised sha256
   "status": {"gated/model": 403},    # every request for that repo answers this status
   "throttle": 200000}                # file bodies go out at about this many bytes per second
Writes the port it listens on to --port-file, and one JSON line per request to --log
({"method", "path", "range", "authorization"}). Exits after --lifetime seconds at the latest.
"""

import argparse
import hashlib
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def git_blob_id(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub:
    def __init__(self, config, log_path):
        self.repos = config.get("repos", {})
        self.cut = set(config.get("cut", []))
        self.corrupt = set(config.get("corrupt", []))
        self.status = config.get("status", {})
        self.throttle = config.get("throttle", 0)
        self.log_path = log_path
        self.lock = threading.Lock()
        self.cut_done = set()
        self.blobs = {}  # sha256 -> (file name, bytes)

    def log(self, entry):
        with self.lock, open(self.log_path, "a") as out:
            out.write(json.dumps(entry) + "\n")

    def read(self, repo, commit, name):
        files = self.repos[repo]["commits"][commit]
        with open(files[name], "rb") as f:
            return f.read()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, as from a real server
    hub = None  # set in main()

    def log_message(self, *args):
        pass

    def send(self, status, body=b"", headers=None, content_type="application/octet-stream", head=False):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.write_body(body)

    def write_body(self, body):
        rate = self.hub.throttle
        if not rate:
            return self.wfile.write(body)
        step = 16384
        try:
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                time.sleep(step / rate)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client stopped listening (a stopped pull)

    def error(self, status, code, head=False):
        message = code + ": " + self.path
        self.send(status, json.dumps({"error": message}).encode(), {"X-Error-Code": code, "X-Error-Message": message},
                  "application/json", head)

    def do_HEAD(self):
        self.handle_any(head=True)

    def do_GET(self):
        self.handle_any(head=False)

    def handle_any(self, head):
        hub = self.hub
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        hub.log({"method": self.command, "path": path, "range": self.headers.get("Range"),
                 "authorization": self.headers.get("Authorization")})
        if path.startswith("/cdn/"):
            return self.serve_blob(path[len("/cdn/"):], head)
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            repo, sep, revision = rest.partition("/revision/")
            if not sep:
                return self.error(404, "RepoNotFound", head)
            if repo in hub.status:
                return self.error(hub.status[repo], "GatedRepo" if hub.status[repo] == 403 else "RepoNotFound", head)
            if repo not in hub.repos:
                return self.error(401, "RepoNotFound", head)  # huggingface.co hides private repos so
            commit = hub.repos[repo]["revisions"].get(revision, revision)
            if commit not in hub.repos[repo]["commits"]:
                return self.error(404, "RevisionNotFound", head)
            body = json.dumps({"id": repo, "sha": commit,
                               "siblings": [{"rfilename": n} for n in sorted(hub.repos[repo]["commits"][commit])]})
            return self.send(200, body.encode(), content_type="application/json", head=head)
        repo, sep, rest = path.lstrip("/").partition("/resolve/")
        if not sep:
            return self.error(404, "RepoNotFound", head)
        if repo in hub.status:
            return self.error(hub.status[repo], "GatedRepo" if hub.status[repo] == 403 else "RepoNotFound", head)
        if repo not in hub.repos:
            return self.error(401, "RepoNotFound", head)
        revision, _, name = rest.partition("/")
        commit = hub.repos[repo]["revisions"].get(revision, revision)
        if commit not in hub.repos[repo]["commits"]:
            return self.error(404, "RevisionNotFound", head)
        if name not in hub.repos[repo]["commits"][commit]:
            return self.error(404, "EntryNotFound", head)
        data = hub.read(repo, commit, name)
        if name.endswith(".safetensors"):
            sha = hashlib.sha256(data).hexdigest()
            with hub.lock:
                hub.blobs[sha] = (name, data)
            pointer = ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (sha, len(data))).encode()
            location = "http://%s:%d/cdn/%s" % (self.server.server_address[0], self.server.server_address[1], sha)
            return self.send(302, b"", {"Location": location, "ETag": '"%s"' % git_blob_id(pointer),
                                        "X-Linked-Etag": '"%s"' % sha, "X-Linked-Size": str(len(data)),
                                        "X-Repo-Commit": commit}, head=head)
        self.serve_bytes(name, data, {"ETag": '"%s"' % git_blob_id(data), "X-Repo-Commit": commit}, head)

    def serve_blob(self, sha, head):
        with self.hub.lock:
            found = self.hub.blobs.get(sha)
        if found is None:
            return self.error(404, "EntryNotFound", head)
        name, data = found
        self.serve_bytes(name, data, {"ETag": '"%s"' % sha}, head)

    def serve_bytes(self, name, data, headers, head):
        hub = self.hub
        if name in hub.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = 0
        status = 200
        headers = dict(headers, **{"Accept-Ranges": "bytes"})
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes=") and wanted.endswith("-"):
            start = int(wanted[len("bytes="):-1])
            if start >= len(data):
                return self.send(416, b"", dict(headers, **{"Content-Range": "bytes */%d" % len(data)}), head=head)
            status = 206
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, len(data) - 1, len(data))
        body = data[start:]
        with hub.lock:
            cut = not head and name in hub.cut and name not in hub.cut_done
            if cut:
                hub.cut_done.add(name)
        if not cut:
            return self.send(status, body, headers, head=head)
        # Promise the whole body, send half of it, and hang up.
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--lifetime", type=float, default=300)
    args = parser.parse_args()
    with open(args.config) as f:
        Handler.hub = Hub(json.load(f), args.log)
    open(args.log, "w").close()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    temp = args.port_file + ".tmp"
    with open(temp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(temp, args.port_file)
    threading.Timer(args.lifetime, lambda: os._exit(0)).start()
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
