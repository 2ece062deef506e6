"""A stand-in for the Hugging Face Hub's upload API: create a repo, preupload, commit.

Just what `HfApi.create_repo` and `HfApi.upload_folder` ask for when the server tells the
client to send every file as a regular (inline) blob, so pushing is tested through the real
SDK with no network. Anything else is answered 404 and recorded.
"""

from __future__ import annotations

import base64
import json

from .wire import QuietHandler, send_json, serve


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
                send_json(self, 404, {"error": f"no route {self.path}"})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
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
            self.repos[repo_id] = body
            return 200, {"url": f"{self.url}/{repo_id}", "name": repo_id, "id": repo_id}
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "preupload":
            files = json.loads(raw)["files"]
            return 200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "commit":
            if self.fail_commits:
                return 403, {"error": "You don't have the rights to create a model under me"}
            repo_id = "/".join(parts[2:4])
            for line in raw.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    value = item["value"]
                    self.files.setdefault(repo_id, {})[value["path"]] = base64.b64decode(value["content"])
            return 200, {"commitUrl": f"{self.url}/{repo_id}/commit/{'a' * 40}", "commitOid": "a" * 40,
                         "pullRequestUrl": None}
        return 404, {"error": f"no route /{'/'.join(parts)}"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
