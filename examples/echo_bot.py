"""Echo bot: answers every new incoming message once. Token and base URL come from the
environment (OT_API_TOKEN, OT_API_BASE_URL); stop after N messages with an argument."""

import asyncio
import os
import sys

import opentrain_async as ot
from opentrain_async import OpenTrainClient

# Refusals of one reply (read-only, blocked, gone, an echo too long): that message is
# skipped. Raised out of the loop, they would stop the bot and return on every restart.
SKIPPED = (ot.ConflictError, ot.PermissionDeniedError, ot.NotFoundError, ot.InvalidRequestError)


async def main(max_messages: int | None = None) -> int:
    handled = 0
    cursor_file = os.environ.get("OT_CURSOR_FILE", "echo-bot-cursor.json")
    async with OpenTrainClient() as client, client.listen(store=cursor_file) as messages:
        async for message in messages:  # saved as finished when the next one is asked for
            try:
                # reply() first reads back: after a crash, an answer already sent is found
                # and not sent again.
                await client.reply(message, f"echo: {message.content}")
            except SKIPPED as e:
                print(f"not answered in {message.conversation_id}: {e}", file=sys.stderr)
            handled += 1
            print(f"handled {message.id}", flush=True)
            if handled == max_messages:
                break  # leaving the `async with` normally: this message counts as finished
    return handled


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else None))
