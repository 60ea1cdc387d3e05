"""A minimal RTSP server for tests: serves one video file as ``rtsp://127.0.0.1:PORT/cam``.

ffmpeg packs the file into RTP (``-f rtp``, stream copy, looping, real time) towards a
loopback UDP port; this server answers OPTIONS/DESCRIBE/SETUP/PLAY and relays the RTP
packets to the client interleaved on its TCP connection (RTP/AVP/TCP), as a camera does.
``drop()`` cuts every client and stops listening, ``resume()`` listens again on the port;
setting ``paused`` keeps the connection up but sends nothing (a frozen camera).
Loopback only.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path


def _sdp_for(video: Path) -> str:
    """SDP of the file's video stream as ffmpeg's RTP muxer describes it."""
    with tempfile.TemporaryDirectory() as tmp:
        sdp = Path(tmp) / "cam.sdp"
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", str(video), "-t", "0.2",
             "-an", "-c", "copy", "-f", "rtp", "-sdp_file", str(sdp), "rtp://127.0.0.1:9"],
            check=True, timeout=30, capture_output=True,
        )  # fmt: skip
        text = sdp.read_text()
    lines = []
    for line in text.splitlines():
        if line.startswith("m=video"):
            parts = line.split()
            parts[1] = "0"
            line = " ".join(parts)
            lines.append(line)
            lines.append("a=control:streamid=0")
            continue
        if line.startswith("c="):
            line = "c=IN IP4 0.0.0.0"
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


class RtspRelay:
    def __init__(self, video: Path, port: int = 0) -> None:
        self.video = video
        self.sdp = _sdp_for(video)
        self._listener: socket.socket | None = None
        self.port = port
        self._clients: list[socket.socket] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.sessions = 0
        self.paused = threading.Event()  # set: keep the connection, send no packets
        self.resume()

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def resume(self) -> None:
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", self.port))
        lsock.listen(4)
        self.port = lsock.getsockname()[1]
        self._listener = lsock
        threading.Thread(
            target=self._accept, args=(lsock,), name="rtsp-accept", daemon=True
        ).start()

    def drop(self) -> None:
        """Cut the stream: close the listener and every client, stop ffmpeg."""
        with self._lock:
            if self._listener is not None:
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for c in self._clients:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self._clients.clear()
            for p in self._procs:
                p.kill()
                p.wait()
            self._procs.clear()

    def close(self) -> None:
        self._stopped.set()
        self.drop()

    def _accept(self, lsock: socket.socket) -> None:
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            with self._lock:
                self._clients.append(conn)
            threading.Thread(
                target=self._serve, args=(conn,), name="rtsp-client", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        playing = False
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while buf:
                    if buf[:1] == b"$":  # interleaved RTCP from the client: skip it
                        if len(buf) < 4:
                            break
                        size = int.from_bytes(buf[2:4], "big")
                        if len(buf) < 4 + size:
                            break
                        buf = buf[4 + size :]
                        continue
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head, buf = buf[:end].decode("latin-1"), buf[end + 4 :]
                    lines = head.split("\r\n")
                    method = lines[0].split(" ", 1)[0]
                    headers = {
                        k.strip().lower(): v.strip()
                        for k, _, v in (line.partition(":") for line in lines[1:])
                    }
                    length = int(headers.get("content-length", "0"))
                    buf = buf[length:]
                    self._answer(conn, method, headers)
                    if method == "PLAY" and not playing:
                        playing = True
                        threading.Thread(
                            target=self._pump, args=(conn,), name="rtsp-pump", daemon=True
                        ).start()
        except OSError:
            return

    def _answer(self, conn: socket.socket, method: str, headers: dict[str, str]) -> None:
        cseq = headers.get("cseq", "0")
        extra = ""
        body = ""
        if method == "OPTIONS":
            extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n"
        elif method == "DESCRIBE":
            body = self.sdp
            extra = f"Content-Base: {self.url}/\r\nContent-Type: application/sdp\r\n"
        elif method == "SETUP":
            extra = "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 4242;timeout=60\r\n"
        elif method in ("PLAY", "GET_PARAMETER", "TEARDOWN"):
            extra = "Session: 4242\r\n"
        if body:
            extra += f"Content-Length: {len(body)}\r\n"
        conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}\r\n{body}".encode("latin-1"))

    def _pump(self, conn: socket.socket) -> None:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(0.5)
        uport = udp.getsockname()[1]
        proc = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
             "-i", str(self.video), "-an", "-c", "copy", "-f", "rtp",
             f"rtp://127.0.0.1:{uport}?pkt_size=1400"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        with self._lock:
            self._procs.append(proc)
            self.sessions += 1
        try:
            while proc.poll() is None and not self._stopped.is_set():
                try:
                    pkt = udp.recv(65536)
                except TimeoutError:
                    continue
                if self.paused.is_set():
                    continue
                conn.sendall(b"$\x00" + len(pkt).to_bytes(2, "big") + pkt)
        except OSError:
            pass
        finally:
            proc.kill()
            proc.wait()
            udp.close()


if __name__ == "__main__":
    import sys

    relay = RtspRelay(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print(relay.url, flush=True)
    while True:
        time.sleep(1)
