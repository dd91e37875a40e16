"""A real SMTP server (aiosmtpd) for tests that keeps what it receives: each message's raw bytes as DIR/N.eml and its
envelope (MAIL FROM, RCPT TO) as DIR/N.json, the .json written last (by rename) so a reader never sees half a message.
Prints "READY <port>" once listening."""
import itertools
import json
import os

from aiosmtpd_server import parse_args, serve


class Handler:
    def __init__(self, directory):
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        n = next(self.counter)
        base = os.path.join(self.directory, str(n))
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        with open(base + ".tmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.rename(base + ".tmp", base + ".json")
        return "250 OK"


def main():
    args = parse_args(lambda parser: parser.add_argument("--dir", required=True))
    serve(Handler(args.dir), args.port, decode_data=False)


if __name__ == "__main__":
    main()
