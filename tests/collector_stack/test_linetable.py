"""The line table reader gives the interpreter's own line for every instruction of real code."""

import importlib
import types

from profiler_stack._linetable import line_of

MODULES = ["asyncio.base_events", "json.decoder", "email.message", "argparse", "typing", "dataclasses"]


def code_objects(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from code_objects(const)


def module_codes():
    for name in MODULES:
        module = importlib.import_module(name)
        with open(module.__file__, encoding="utf-8") as f:
            yield from code_objects(compile(f.read(), module.__file__, "exec"))


def test_every_instruction_of_stdlib_modules_gets_the_interpreters_line():
    checked = 0
    for code in module_codes():
        table = code.co_linetable
        for start, end, line in code.co_lines():
            for offset in range(start, end, 2):
                assert line_of(table, code.co_firstlineno, offset) == (-1 if line is None else line), (
                    code.co_name, offset)
                checked += 1
    assert checked > 10000


def test_a_table_cut_short_answers_minus_one_past_its_end():
    code = compile("x = 1\n" * 200, "<cut>", "exec")
    table = code.co_linetable
    last = list(code.co_lines())[-1]
    assert line_of(table[: len(table) // 4], code.co_firstlineno, last[0]) == -1
    assert line_of(table, code.co_firstlineno, last[0]) == last[2]
