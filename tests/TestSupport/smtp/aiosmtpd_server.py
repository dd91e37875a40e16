"""What the aiosmtpd test servers (recording_smtp.py, rejecting_smtp.py) share: the --port argument, starting the
server on 127.0.0.1, the "READY <port>" line the C# fixtures wait for, and running until SIGTERM or SIGINT."""
import argparse
import asyncio
import signal

from aiosmtpd.controller import Controller


def parse_args(configure=None):
    """--port (required) plus whatever configure(parser) adds."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    if configure is not None:
        configure(parser)
    return parser.parse_args()


def serve(handler, port, **controller_options):
    """Serves handler on 127.0.0.1:port, prints READY, and blocks until SIGTERM or SIGINT."""
    controller = Controller(handler, hostname="127.0.0.1", port=port, **controller_options)
    controller.start()
    print(f"READY {port}", flush=True)
    stop = asyncio.new_event_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.call_soon_threadsafe(stop.stop))
    stop.run_forever()
    controller.stop()
