"""Benchmark: the pure mapping step. Prints figures; not a test.

    python bench/bench_mapping.py [--objects N]

An object mapping of 12 attributes, 4 of them expressions (Join, Switch, ToLower with Replace,
NormalizeDiacritics), applied with map_object to N source objects (100,000 by default).
The baseline in the same run is the same 12 attributes as direct mappings only.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _calibrate import python_speed

from engine.clock import ManualClock
from engine.expressions import Env
from engine.mapping import CompiledMapping, compile_mapping, map_object
from engine.model import SynchronizationSchema, from_graph

DIRECT = [
    "userName",
    "givenName",
    "surname",
    "mail",
    "department",
    "jobTitle",
    "employeeId",
    "mobilePhone",
    "city",
    "country",
    "company",
    "office",
]
EXPRESSIONS = {
    "displayName": 'Join(" ", [givenName], [surname])',
    "division": 'Switch([department], "Other", "S", "Sales", "E", "Engineering", "F", "Finance")',
    "alias": 'ToLower(Replace([mail], "@example.org", , , "", , ))',
    "asciiName": "NormalizeDiacritics([surname])",
}
ROUNDS = 5


def mapping(with_expressions: bool) -> CompiledMapping:
    attributes: list[dict[str, Any]] = []
    direct = DIRECT[:8] if with_expressions else DIRECT
    for name in direct:
        attributes.append(
            {
                "targetAttributeName": name,
                "source": {"type": "Attribute", "name": name},
                "matchingPriority": 1 if name == "userName" else 0,
            }
        )
    if with_expressions:
        for name, expression in EXPRESSIONS.items():
            attributes.append(
                {
                    "targetAttributeName": name,
                    "source": {"type": "Function", "expression": expression},
                }
            )
    schema = from_graph(
        {
            "synchronizationRules": [
                {
                    "id": "bench",
                    "objectMappings": [
                        {
                            "sourceObjectName": "User",
                            "targetObjectName": "User",
                            "attributeMappings": attributes,
                        }
                    ],
                }
            ]
        },
        SynchronizationSchema,
    )
    rule = schema.synchronization_rules[0]
    return compile_mapping(schema, rule, rule.object_mappings[0])


def person(n: int) -> dict[str, Any]:
    return {
        "userName": f"user{n}@example.org",
        "givenName": f"Zoë{n % 97}",
        "surname": ("Müller", "Ødegård", "Łukasz", "García", "Smith")[n % 5] + str(n % 1009),
        "mail": f"User.{n}@example.org",
        "department": "SEFX"[n % 4],
        "jobTitle": "Engineer",
        "employeeId": str(100000 + n),
        "mobilePhone": f"+1 555 {n:07d}",
        "city": "Oslo",
        "country": "NO",
        "company": "Example",
        "office": f"B{n % 40}",
    }


def measure(compiled: CompiledMapping, people: list[dict[str, Any]], env: Env) -> float:
    rates = []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        for p in people:
            map_object(compiled, p, env)
        rates.append(len(people) / (time.perf_counter() - began))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=100_000)
    options = parser.parse_args()
    people = [person(n) for n in range(options.objects)]
    env = Env(now=ManualClock().now)
    sample = map_object(mapping(True), people[1], env)
    assert sample["displayName"] == "Zoë1 Ødegård1" and sample["asciiName"] == "OEdegard1"
    assert sample["division"] == "Engineering" and sample["alias"] == "user.1"
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print(f"calibration: {python_speed():.1f} M loop iterations/s (machine speed now)")
    base = measure(mapping(False), people, env)
    full = measure(mapping(True), people, env)
    print(f"baseline  12 direct attributes:           {base:>10,.0f} objects/s")
    print(
        f"mapping   8 direct + 4 expressions:       {full:>10,.0f} objects/s "
        f"(median of {ROUNDS} over {options.objects:,} objects; "
        f"{full / base:.2f}x of direct-only)"
    )


if __name__ == "__main__":
    main()
