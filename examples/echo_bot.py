"""Echo bot: answers every new incoming message. Token and base URL come from the
environment (OT_API_TOKEN, OT_API_BASE_URL); stop after N messages with an argument."""

import asyncio
import os
import sys

from opentrain_async import ConflictError, OpenTrainClient, PermissionDeniedError


async def main(max_messages: int | None = None) -> int:
    handled = 0
    cursor_file = os.environ.get("OT_CURSOR_FILE", "echo-bot-cursor.json")
    async with OpenTrainClient() as client:
        async for message in client.listen(store=cursor_file):
            try:
                await client.send_message(message.conversation_id, f"echo: {message.content}")
            except (ConflictError, PermissionDeniedError) as e:
                # This conversation refuses replies (read-only, blocked...): skip it. Raised
                # out of the loop, it would stop the bot, and a restart would meet the same
                # message again (listen() saves its cursor once a page is handled).
                print(f"not answered in {message.conversation_id}: {e}", file=sys.stderr)
            handled += 1
            if handled == max_messages:
                break
    return handled


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else None))
