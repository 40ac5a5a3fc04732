"""An MCP client built on the official MCP Python SDK (`mcp`, pinned in
tests/mcp/requirements.txt): its `stdio_client` and `ClientSession`, with
the SDK's own defaults. `StdioServerParameters` gets no `env`, so the
server it starts sees only what the SDK passes on (HOME, LOGNAME, PATH,
SHELL, TERM, USER), as it does in a user's editor. Driven line by line
from stdin like tests/mcp/client.mjs:

    {"op":"list"}                       -> {"ok":true,"tools":[names]}
    {"op":"call","name":N,"args":{...}} -> {"ok":true,"text":...} | {"ok":false,"error":...}
    {"op":"close"}                      -> {"ok":true}, then exit

Usage: python3 client.py -- CMD ARGS...
"""

import json
import sys

import anyio
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client


def out(value):
    sys.stdout.write(json.dumps(value, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def handle(session, cmd):
    op = cmd.get("op")
    try:
        if op == "list":
            tools = await session.list_tools()
            return {"ok": True, "tools": [t.name for t in tools.tools]}
        if op == "call":
            r = await session.call_tool(cmd["name"], cmd.get("args") or {})
            text = "".join(getattr(c, "text", "") for c in r.content)
            return {"ok": not r.is_error, "text": text} if not r.is_error else {"ok": False, "error": text}
        if op == "close":
            return {"ok": True}
        return {"ok": False, "error": f"unknown op {op}"}
    except Exception as e:  # the SDK's McpError and transport errors alike
        return {"ok": False, "error": str(e)}


async def main(argv):
    command, *args = argv[argv.index("--") + 1 :]
    params = StdioServerParameters(command=command, args=args)
    stdin = anyio.wrap_file(sys.stdin)
    try:
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                out({"ok": True, "ready": True})
                async for line in stdin:
                    if not line.strip():
                        continue
                    cmd = json.loads(line)
                    out(await handle(session, cmd))
                    if cmd.get("op") == "close":
                        return
    except Exception as e:
        out({"ok": False, "error": f"connect: {e}"})
        sys.exit(1)


if __name__ == "__main__":
    anyio.run(main, sys.argv)
