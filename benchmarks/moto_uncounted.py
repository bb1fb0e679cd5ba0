"""moto_server without its message count on every send, for `sqs_publish.py`.

moto builds the whole attribute map of a queue on every SendMessage (to read one
attribute, `ContentBasedDeduplication`), and three of those attributes count the queue's
messages one by one: each message sent costs time in proportion to the messages already
in the queue. SQS has no such cost, and it hides what batching saves: sending a batch of
10 costs moto ten of those counts, so on a queue of a few hundred messages any client's
batches are barely faster than its single sends (`--moto-as-is` shows it). Here those
three counts are 0; the benchmark never reads them. Everything else is moto's own.

    python benchmarks/moto_uncounted.py -H 127.0.0.1 -p PORT   (moto_server's arguments)
"""

from __future__ import annotations

import sys

from moto.server import main
from moto.sqs import models

COUNTS = (
    "approximate_number_of_messages",
    "approximate_number_of_messages_delayed",
    "approximate_number_of_messages_not_visible",
)


def _uncounted(self: models.Queue) -> int:
    return 0


for name in COUNTS:
    setattr(models.Queue, name, property(_uncounted))

if __name__ == "__main__":
    main(sys.argv[1:])
