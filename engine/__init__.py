"""The engine: compile a checked policy set, then evaluate requests against it.

The whole pipeline, in order (engine/pipeline.py runs the first three for every tool):

    dsl.loader.load(paths)                    text → typed AST (dsl/parser.py, dsl/cst_to_ast.py)
    dsl.checker.check_policy_set(set)         validation and lint, as `ghat check` reports them
    engine.compile_policy(set, env)           AST → decision graph (engine/compiler.py)
    await engine.evaluate(...)                request → Decision (engine/evaluator.py)
"""

from engine.compiler import CompiledPolicy, compile_paths, compile_policy
from engine.decision import Allow, Candidate, Decision, Deny, Step
from engine.evaluator import evaluate
from engine.request import EvalContext, GatewayRequest, TextField

__all__ = [
    "Allow",
    "Candidate",
    "CompiledPolicy",
    "Decision",
    "Deny",
    "EvalContext",
    "GatewayRequest",
    "Step",
    "TextField",
    "compile_paths",
    "compile_policy",
    "evaluate",
]
