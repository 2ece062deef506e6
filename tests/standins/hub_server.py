"""A stand-in for the Hugging Face Hub's upload API: create a repo, preupload, commit.

Just what `HfApi.create_repo` and `HfApi.upload_folder` ask for when the server tells the
client to send every file as a regular (inline) blob, so pushing is tested through the real
SDK with no network; for model and dataset repos alike (a dataset's files are kept under
`files["datasets/OWNER/NAME"]`). Downloads (`hf_hub_download`: HEAD then GET of
`/[datasets/]OWNER/NAME/resolve/REVISION/PATH`) serve what was committed, `whoami-v2` names
the user `me`, and a README's metadata always validates. Anything else is answered 404 and
recorded. Subclasses add routes by overriding `get` / `post` (see `jobs_server.py`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import unquote

from .wire import QuietHandler, read_body, send_json, serve


class HubStandIn:
    def __init__(self) -> None:
        self.repos: dict[str, dict] = {}
        self.files: dict[str, dict[str, bytes]] = {}
        self.requests: list[tuple[str, str]] = []
        self.auth: list[str] = []
        self.fail_commits = False  # answer commits as the Hub does a read-only token
        hub = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                hub.requests.append(("GET", self.path))
                if not hub.get(self, head=False):
                    send_json(self, 404, {"error": f"no route {self.path}"})

            def do_HEAD(self) -> None:
                hub.requests.append(("HEAD", self.path))
                if not hub.get(self, head=True):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def do_POST(self) -> None:
                raw = read_body(self)
                hub.requests.append(("POST", self.path))
                hub.auth.append(self.headers.get("Authorization", ""))
                status, payload = hub.post(self.path.split("?")[0].strip("/").split("/"), raw)
                send_json(self, status, payload)

        self.server = serve(Handler, "hub-stand-in")
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def post(self, parts: list[str], raw: bytes) -> tuple[int, dict]:
        if parts[:3] == ["api", "repos", "create"]:
            body = json.loads(raw)
            repo_id = f"{body.get('organization') or 'me'}/{body['name']}"
            key = repo_id if body.get("type") in (None, "model") else f"{body['type']}s/{repo_id}"
            self.repos[key] = body
            return 200, {"url": f"{self.url}/{key}", "name": repo_id, "id": repo_id}
        if parts == ["api", "validate-yaml"]:  # a README.md in a commit: its metadata is fine
            return 200, {"errors": [], "warnings": []}
        kinds = ("models", "datasets")
        if parts[:1] == ["api"] and len(parts) >= 6 and parts[1] in kinds and parts[4] == "preupload":
            files = json.loads(raw)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        if parts[:1] == ["api"] and len(parts) >= 6 and parts[1] in kinds and parts[4] == "commit":
            if self.fail_commits:
                return 403, {"error": "You don't have the rights to create a model under me"}
            repo_id = "/".join(parts[2:4])
            key = repo_id if parts[1] == "models" else f"{parts[1]}/{repo_id}"
            for line in raw.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    value = item["value"]
                    self.files.setdefault(key, {})[value["path"]] = base64.b64decode(value["content"])
            return 200, {"commitUrl": f"{self.url}/{repo_id}/commit/{'a' * 40}", "commitOid": "a" * 40,
                         "pullRequestUrl": None}
        return 404, {"error": f"no route /{'/'.join(parts)}"}

    def get(self, handler, head: bool) -> bool:
        """Answer a GET (or HEAD) the Hub would: whoami and file downloads. False: no such route."""
        handler_auth = handler.headers.get("Authorization", "")
        parts = [unquote(p) for p in handler.path.split("?")[0].strip("/").split("/")]
        if parts == ["api", "whoami-v2"]:
            self.auth.append(handler_auth)
            send_json(handler, 200, {"type": "user", "name": "me", "id": "0" * 24, "orgs": []})
            return True
        key_parts = parts[:3] if parts[:1] == ["datasets"] else parts[:2]
        rest = parts[len(key_parts):]
        if len(rest) >= 3 and rest[0] == "resolve":
            self.auth.append(handler_auth)
            data = self.files.get("/".join(key_parts), {}).get("/".join(rest[2:]))
            if data is None:
                handler.send_response(404)
                handler.send_header("X-Error-Code", "EntryNotFound")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return True
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
            handler.send_header("X-Repo-Commit", "a" * 40)
            handler.end_headers()
            if not head:
                handler.wfile.write(data)
            return True
        return False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
