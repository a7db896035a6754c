"""Red team 8: reach the network - the trainer's loopback, the internet, DNS.

A listener the test opens on the host's 127.0.0.1, a public resolver, and a name lookup.
"""

import socket

import harness

HOST_PORT = 9  # the test puts the port of its listener here

failures = []
for address in [("127.0.0.1", HOST_PORT), ("1.1.1.1", 53), ("8.8.8.8", 443)]:
    try:
        socket.create_connection(address, timeout=2).close()
        print("CONNECTED", address)
    except OSError as e:
        failures.append(f"{address[0]}:{address[1]}: {e.strerror or e}")
try:
    print("RESOLVED", socket.getaddrinfo("pypi.org", 443))
except OSError as e:
    failures.append(f"pypi.org: {e.strerror or e}")
print("\n".join(failures))
if False:
    harness.submit(harness.batches(1))
if len(failures) == 4:
    raise ConnectionError(f"no network: {failures[0]}")
