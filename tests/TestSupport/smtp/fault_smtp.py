"""A scriptable, real SMTP server (aiosmtpd) that misbehaves on demand, for transport fault tests.

Faults (command-line options, and changeable at run time with `set` on stdin):
  data_delay N      answer the end of DATA after N seconds; the message is recorded FIRST, as a real MTA has queued
                    it once the final dot arrived (aiosmtpd cancels the handler when the client goes away)
  drop_after_data 1 record the message, then close the connection without answering the final dot
  data_reply R      answer the end of DATA with R (e.g. "451 4.3.0 try later"); the message is not recorded
  mail_reply R      answer every MAIL FROM with R (e.g. "421 4.3.2 shutting down", "553 5.7.1 sender refused")
  rcpt_reply R      answer every RCPT TO with R (e.g. "450 4.2.1 try later", "550 5.1.1 no such user")
  stop_after N      after the Nth message taken from now on, stop listening (as `stop`) just after its 250 reply: an
                    outage that begins at a known point of a job however slowly the test polls it
  password P        require AUTH (PLAIN/LOGIN, any user) with password P; a wrong one gets "535 5.7.8"
  --tls-cert F --tls-key K  (start only) offer STARTTLS with this certificate (PEM files)
  --chunking        (start only) also offer CHUNKING (RFC 3030 BDAT); the faults above apply to the LAST chunk as to
                    the final dot, and each BDAT is printed ("BDAT <size> [LAST]")
  (set a reply to "-" to clear it)

Commands on stdin, each answered "OK <command>" on stdout:
  set KEY VALUE     change a fault (above)
  stop              stop listening and drop every connection (new connections are refused)
  start             listen again on the same port

stdout: "READY <port>" once listening; "CONNECTED" per accepted connection; "ACCEPTED <message-id> <recipient>" for
every recipient of every message the server took (before any delay), so a test can count copies.
"""
import argparse
import asyncio
import email.parser
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

_print_lock = threading.Lock()


def say(line):
    with _print_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Faults:
    def __init__(self, args):
        self.data_delay = args.data_delay
        self.drop_after_data = args.drop_after_data
        self.data_reply = args.data_reply
        self.mail_reply = args.mail_reply
        self.rcpt_reply = args.rcpt_reply
        self.password = args.password
        self.chunking = args.chunking
        self.stop_after = 0  # messages left before the listener stops itself; 0 = never
        self.on_stop_after = None

    def set(self, key, value):
        if key == "stop_after":
            self.stop_after = int(value)
        elif key == "data_delay":
            self.data_delay = float(value)
        elif key == "drop_after_data":
            self.drop_after_data = value not in ("0", "false", "")
        elif key in ("data_reply", "mail_reply", "rcpt_reply", "password"):
            setattr(self, key, None if value == "-" else value)
        else:
            raise ValueError(f"unknown fault {key}")


class Handler:
    def __init__(self, faults):
        self.faults = faults

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if self.faults.chunking:
            responses.insert(len(responses) - 1, "250-CHUNKING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.faults.mail_reply:
            return self.faults.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.faults.rcpt_reply:
            return self.faults.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.faults.data_reply:
            return self.faults.data_reply
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        headers = email.parser.BytesHeaderParser().parsebytes(content)
        message_id = (headers.get("Message-ID") or "-").strip().strip("<>")
        # Record first: the message is queued now, whatever happens to the reply.
        for rcpt in envelope.rcpt_tos:
            say(f"ACCEPTED {message_id} {rcpt}")
        if self.faults.drop_after_data:
            server.transport.close()
            await asyncio.sleep(3600)
        if self.faults.data_delay > 0:
            await asyncio.sleep(self.faults.data_delay)
        faults = self.faults
        if faults.stop_after > 0:
            faults.stop_after -= 1
            if faults.stop_after == 0:
                # Off the loop's thread (stop waits for the loop), and a moment later so that this reply goes out first.
                threading.Timer(0.1, faults.on_stop_after).start()
        return "250 2.0.0 OK queued as " + message_id


class Server:
    def __init__(self, args):
        self.port = args.port
        self.faults = Faults(args)
        self.faults.on_stop_after = self.stop
        self.lock = threading.Lock()
        self.handler = Handler(self.faults)
        self.controller = None
        self.connections = set()
        # Controller.start() connects to the server itself to see it is up; that one is not counted.
        self.counting = False
        self.tls_context = None
        if args.tls_cert:
            self.tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls_context.load_cert_chain(args.tls_cert, args.tls_key)

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and self.faults.password is not None \
            and auth_data.password.decode("utf-8", "replace") == self.faults.password
        return AuthResult(success=ok, handled=False)

    def start(self):
        owner = self

        class TrackingSMTP(SMTP):
            async def smtp_BDAT(self, arg):
                # RFC 3030: "BDAT <size> [LAST]" followed by exactly <size> octets; LAST ends the message.
                if await self.check_helo_needed() or await self.check_auth_needed("BDAT"):
                    return
                if not self.envelope.rcpt_tos:
                    await self.push("503 5.5.1 Error: need RCPT command")
                    return
                words = arg.split()
                size = int(words[0])
                last = len(words) > 1 and words[1].upper() == "LAST"
                say(f"BDAT {size}{' LAST' if last else ''}")
                chunk = await self._reader.readexactly(size)
                self.envelope.original_content = (self.envelope.original_content or b"") + chunk
                if not last:
                    await self.push(f"250 2.0.0 {size} octets received")
                    return
                self.envelope.content = self.envelope.original_content
                status = await self._call_handler_hook("DATA")
                self._set_post_data_state()
                await self.push(status)

            def connection_made(self, transport):
                super().connection_made(transport)
                owner.connections.add(transport)
                if owner.counting:
                    say("CONNECTED")

            def connection_lost(self, error):
                owner.connections.discard(self.transport)
                super().connection_lost(error)

        class TrackingController(Controller):
            def factory(self):
                return TrackingSMTP(self.handler, **self.SMTP_kwargs)

        auth = {}
        if self.faults.password is not None:
            auth = dict(authenticator=self._authenticate, auth_required=True, auth_require_tls=False)
        else:
            # AUTH is still offered so that "set password" can turn it on for new connections.
            auth = dict(authenticator=self._authenticate, auth_required=False, auth_require_tls=False)
        self.counting = False
        if self.tls_context is not None:
            auth["tls_context"] = self.tls_context
        self.controller = TrackingController(self.handler, hostname="127.0.0.1", port=self.port, **auth)
        self.controller.start()
        self.counting = True

    def restart_auth(self):
        # auth_required is fixed per SMTP instance: new connections pick up a changed password requirement.
        if self.controller is not None:
            self.controller.SMTP_kwargs["auth_required"] = self.faults.password is not None

    def stop(self):
        with self.lock:
            self._stop()

    def _stop(self):
        if self.controller is None:
            return
        loop = self.controller.loop
        done = threading.Event()

        def drop_all():
            for transport in list(self.connections):
                transport.abort()
            done.set()

        loop.call_soon_threadsafe(drop_all)
        done.wait(5)
        self.controller.stop()
        self.controller = None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-delay", type=float, default=0)
    parser.add_argument("--drop-after-data", action="store_true")
    parser.add_argument("--data-reply")
    parser.add_argument("--mail-reply")
    parser.add_argument("--rcpt-reply")
    parser.add_argument("--password")
    parser.add_argument("--chunking", action="store_true")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    server = Server(args)
    server.start()
    say(f"READY {args.port}")

    done = threading.Event()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: done.set())

    def control():
        for line in sys.stdin:
            command = line.strip()
            if not command:
                continue
            try:
                verb, _, rest = command.partition(" ")
                if verb == "stop":
                    server.stop()
                elif verb == "start":
                    with server.lock:
                        if server.controller is None:
                            server.start()
                elif verb == "set":
                    key, _, value = rest.partition(" ")
                    server.faults.set(key, value)
                    if key == "password":
                        server.restart_auth()
                else:
                    raise ValueError(f"unknown command {verb}")
                say(f"OK {command}")
            except Exception as e:  # noqa: BLE001 - reported to the test, which fails on it
                say(f"ERROR {command}: {e}")
        done.set()  # stdin closed: the test process is gone

    threading.Thread(target=control, daemon=True).start()
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()
