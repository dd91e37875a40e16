"""A real SMTP server (aiosmtpd) for tests: accepts mail, except that it rejects recipients whose local part
starts with "unknown" with "550 5.1.1 <addr>: Recipient address rejected: User unknown", as a receiving MTA does for
a mailbox that does not exist. Prints "READY <port>" once listening; accepted messages are counted, not kept."""
from aiosmtpd_server import parse_args, serve


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@", 1)[0].lower().startswith("unknown"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


def main():
    serve(Handler(), parse_args().port)


if __name__ == "__main__":
    main()
