"""A local RFC 3161 time stamping authority on 127.0.0.1: OpenSSL's `ts -reply` behind a small HTTP
server, with a throw-away key and a self-signed timeStamping certificate; `down` answers 503."""
from __future__ import annotations

import subprocess
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.servers import _Server

CONF = """[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
dir = {dir}
serial = $dir/tsaserial
crypto_device = builtin
signer_cert = $dir/tsa.crt
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


class TimeStampAuthority:
    def __init__(self, folder: Path) -> None:
        self.dir = folder
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(folder / "tsa.key"),
                        "-out", str(folder / "tsa.crt"), "-subj", "/CN=govwatch test TSA", "-days", "2",
                        "-addext", "extendedKeyUsage=critical,timeStamping"], check=True, capture_output=True)
        (folder / "tsaserial").write_text("01\n")
        (folder / "tsa.cnf").write_text(CONF.format(dir=folder))
        self.requests = 0
        self.down = False
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                query = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                tsa.requests += 1
                if tsa.down:
                    body, status, ctype = b"down", 503, "text/plain"
                else:
                    (folder / "q.tsq").write_bytes(query)
                    subprocess.run(["openssl", "ts", "-reply", "-config", str(folder / "tsa.cnf"), "-queryfile", str(folder / "q.tsq"),
                                    "-out", str(folder / "r.tsr")], check=True, capture_output=True)
                    body, status, ctype = (folder / "r.tsr").read_bytes(), 200, "application/timestamp-reply"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def verify(self, token: bytes, message: bytes) -> subprocess.CompletedProcess:
        """OpenSSL's own check of a token (signature, certificate, imprint)."""
        (self.dir / "t.der").write_bytes(token)
        (self.dir / "m.txt").write_bytes(message)
        return subprocess.run(["openssl", "ts", "-verify", "-token_in", "-in", str(self.dir / "t.der"), "-data", str(self.dir / "m.txt"),
                               "-CAfile", str(self.dir / "tsa.crt")], capture_output=True, text=True)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
