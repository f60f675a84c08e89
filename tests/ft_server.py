"""A local stand-in for France Travail's partner API, served over real HTTP on 127.0.0.1 by the tests.

It implements what the client uses — the OAuth2 token endpoint (client credentials), the person
search by NIR + birth date, `lectureOrientation` and the write of an orientation honouring the
`Idempotency-Key` header — and lets a test inject faults per path: an HTTP status (401, 429, 500),
a delay longer than the client's timeout before answering, or a write processed but answered late.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from imports.france_travail_partner import READ_PATH, USER_SEARCH_PATH, WRITE_PATH

CLIENT_ID, CLIENT_SECRET = "cd31-test", "s3cret-test"


class FakeFranceTravail:
    def __init__(self):
        self.lock = threading.Lock()
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.people: dict[tuple[str, str], str] = {}  # (nir15, birth ISO) → jeton usager
        self.orientations: dict[str, list[dict]] = {}  # jeton → lectureOrientation items
        self.stored: dict[str, dict] = {}  # idempotency key → payload (what France Travail recorded)
        self.writes_received = 0
        self.requests: list[tuple[str, str]] = []
        self.faults: dict[str, list] = defaultdict(list)  # path → ["500", "429", "401", ("sleep", s), ("late", s)]
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def person(self, nir15: str, birth_iso: str, items: list[dict] | None = None) -> str:
        jeton = f"jeton-{len(self.people) + 1}"
        self.people[(nir15, birth_iso)] = jeton
        self.orientations[jeton] = items or []
        return jeton

    def revoke_tokens(self):
        with self.lock:
            self.tokens.clear()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, doc=None, headers=None):
                body = b"" if doc is None else json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _fault(self, path) -> object:
                with fake.lock:
                    return fake.faults[path].pop(0) if fake.faults[path] else None

            def _authorised(self) -> bool:
                auth = self.headers.get("Authorization", "")
                with fake.lock:
                    return auth.startswith("Bearer ") and auth[7:] in fake.tokens

            def do_POST(self):  # noqa: N802
                path = urllib.parse.urlparse(self.path).path
                fake.requests.append(("POST", path))
                body = self._body()
                fault = self._fault(path)
                if isinstance(fault, tuple) and fault[0] == "sleep":
                    time.sleep(fault[1])
                elif fault in ("500", "429", "401"):
                    return self._send(int(fault), {"message": "fault"}, {"Retry-After": "1"} if fault == "429" else None)
                if path == "/token":
                    form = dict(urllib.parse.parse_qsl(body.decode()))
                    with fake.lock:
                        fake.token_requests += 1
                    if (form.get("grant_type") != "client_credentials" or form.get("client_id") != CLIENT_ID
                            or form.get("client_secret") != CLIENT_SECRET):
                        return self._send(401, {"error": "invalid_client"})
                    token = f"tok-{fake.token_requests}"
                    with fake.lock:
                        fake.tokens.add(token)
                    return self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 1499})
                if not self._authorised():
                    return self._send(401, {"message": "jeton invalide"})
                doc = json.loads(body or b"{}")
                if path == USER_SEARCH_PATH:
                    jeton = fake.people.get((doc.get("nir"), doc.get("dateNaissance")))
                    if jeton is None:
                        return self._send(404, {"codeRetour": "R404", "message": "usager inconnu"})
                    return self._send(200, {"jetonUsager": jeton})
                if path == WRITE_PATH:
                    key = self.headers.get("Idempotency-Key")
                    if not key or self.headers.get("ft-jeton-usager") not in fake.orientations:
                        return self._send(400, {"message": "requête invalide"})
                    with fake.lock:
                        fake.writes_received += 1
                        fake.stored.setdefault(key, doc)
                    if isinstance(fault, tuple) and fault[0] == "late":
                        time.sleep(fault[1])  # recorded, but the answer comes after the client gave up
                    return self._send(201, {"statut": "ENREGISTRE"})
                return self._send(404, {"message": "inconnu"})

            def do_GET(self):  # noqa: N802
                path = urllib.parse.urlparse(self.path).path
                fake.requests.append(("GET", path))
                fault = self._fault(path)
                if isinstance(fault, tuple) and fault[0] == "sleep":
                    time.sleep(fault[1])
                elif fault in ("500", "429", "401"):
                    return self._send(int(fault), {"message": "fault"})
                if not self._authorised():
                    return self._send(401, {"message": "jeton invalide"})
                if path == READ_PATH:
                    items = fake.orientations.get(self.headers.get("ft-jeton-usager"))
                    if not items:
                        return self._send(204)
                    return self._send(200, items)
                return self._send(404, {"message": "inconnu"})

        return Handler
