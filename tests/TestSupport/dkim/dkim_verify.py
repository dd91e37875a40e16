"""Verifies a message's DKIM signature with Debian's python3-dkim (dkimpy), the independent check of the tests: the
key is looked up with dnspython at the given resolver (the tests' dnsmasq), not the system's. Reads the raw message on
stdin; prints "PASS d=<domain> s=<selector>" and exits 0, or prints "FAIL ..." and exits 1. With --txt, that TXT record
answers every key lookup instead (unit tests without a DNS server)."""
import argparse
import re
import sys

import dkim
import dns.resolver


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", help="resolver address")
    parser.add_argument("--port", type=int)
    parser.add_argument("--txt", help="the key record to use for every lookup, instead of DNS")
    args = parser.parse_args()
    if args.txt is None:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [args.server]
        resolver.port = args.port

    def dnsfunc(name, timeout=5):
        if args.txt is not None:
            return args.txt.encode("ascii")
        if isinstance(name, bytes):
            name = name.decode("ascii")
        try:
            answer = resolver.resolve(name, "TXT", lifetime=timeout, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers):
            return None
        for rrset in answer.response.answer:
            if rrset.rdtype == dns.rdatatype.TXT:
                return b"".join(list(rrset.items)[0].strings)
        return None

    message = sys.stdin.buffer.read()
    ok = dkim.verify(message, dnsfunc=dnsfunc)
    sig = re.search(rb"^DKIM-Signature:(.*?)(?=^\S)", message, re.M | re.S)
    tags = {}
    if sig:
        for part in re.sub(rb"\s+", b"", sig.group(1)).split(b";"):
            if b"=" in part:
                k, v = part.split(b"=", 1)
                tags[k.decode()] = v.decode()
    print(("PASS" if ok else "FAIL") + f" d={tags.get('d', '')} s={tags.get('s', '')} h={tags.get('h', '')} c={tags.get('c', '')}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
