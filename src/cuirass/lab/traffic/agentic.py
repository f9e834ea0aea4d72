"""Agentic tool-use trajectories: multi-step episodes with tool calls and tool results in history.

Used by the held-out `agentic` campaign (harvesting agent trajectories on coding and instruction
tasks) and, with different tools and tasks, by benign developers who build agents. An episode is
a sequence of requests: each carries the growing history, and the model answers with the next
tool call until it finishes.
"""

from __future__ import annotations

import json
import random
from typing import Any

from cuirass.lab.traffic.record import REPLY_CAP, system, user


def _tool(name: str, description: str, **props: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {k: {"type": v} for k, v in props.items()},
                "required": list(props),
            },
        },
    }


HARVEST_TOOLS = [
    _tool("run_python", "Execute Python code in a sandbox and return stdout/stderr.", code="string"),
    _tool("read_file", "Read a file from the workspace.", path="string"),
    _tool("write_file", "Write a file to the workspace.", path="string", content="string"),
    _tool("run_tests", "Run the unit tests of the workspace and report failures.", target="string"),
]
DEV_TOOLS = [
    _tool("get_weather", "Current weather for a city.", city="string"),
    _tool("search_docs", "Search the company knowledge base.", query="string"),
    _tool("create_ticket", "Open a support ticket.", title="string", body="string"),
]
AGENT_SYSTEM = (
    "You are an autonomous coding agent working in a sandboxed workspace. Plan before acting, "
    "explain your reasoning before every tool call, use the tools to verify your work, and stop "
    "when the task is complete.",
    "You are a tool-using assistant. Think out loud about which tool to use and why, call one tool at "
    "a time, inspect the result, and continue until the goal is reached.",
)

# Held-out agent system prompts (issue 19): wording no other lab actor uses.
AGENT_SYSTEM_HELDOUT = (
    "You operate inside a throwaway dev container with a few tools. Say what you intend and why before "
    "each tool use, check results as you go, and wrap up once the job is done.",
    "Act as a hands-on engineering agent: reason briefly about the next action, invoke a single tool, "
    "read what comes back, and repeat until you can report the finished result.",
)


def _call(rng: random.Random, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"call_{rng.getrandbits(48):012x}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args)},
    }


def episode(
    rng: random.Random, task: str, solution: str, tools: list[dict[str, Any]], system_prompt: str | None, max_steps: int
) -> list[tuple[list[dict[str, Any]], str, str]]:
    """The requests of one episode as (messages, reply, finish_reason), in order."""
    names = [t["function"]["name"] for t in tools]
    history: list[dict[str, Any]] = [system(system_prompt)] if system_prompt else []
    history.append(user(task))
    steps = []
    n_steps = rng.randint(1, max_steps)
    for step in range(n_steps):
        last = step == n_steps - 1
        if last:
            reply = f"The task is complete. Summary of the reasoning and the result:\n{solution}"
            steps.append((list(history), reply, "stop"))
            break
        name = rng.choice(names)
        plan = (
            f"Step {step + 1}: I will use {name} to make progress; reasoning: the previous result "
            "shows what remains, so this is the next action."
        )
        steps.append((list(history), plan, "tool_calls"))
        call = _call(rng, name, {"code" if name == "run_python" else "query": solution[:120]})
        history.append({"role": "assistant", "content": plan[:REPLY_CAP], "tool_calls": [call]})
        result = rng.choice(("ok", "1 passed", "AssertionError on case 2", "file written", "no results"))
        history.append({"role": "tool", "tool_call_id": call["id"], "content": result})
    return steps
