#!/usr/bin/env python3
"""Lists every strata command line and environment variable the deployment sets up.

Reads the CloudFormation templates and the Dockerfile under infra/ and writes what it
finds as JSON, for tests/it/infra.rs to check against strata's real CLI and settings:

- the container's default command and environment (ECS task definition, Dockerfile),
- the command overrides of EventBridge Scheduler ECS targets (their `Input`),
- the command overrides of Step Functions `ecs:runTask` tasks: literal `Command` lists,
  or `Command.$` built by `States.Array(...)` (evaluated with the state machine's
  example input, resource Metadata `strata.ExampleInput`),
- the models the freshness alarms watch, and the parameter defaults that must agree
  with strata.toml.

Usage: infra_commands.py OUT.json FILE...   (templates *.yaml and a Dockerfile)
Needs PyYAML, which cfn-lint installs. Exits 1 on anything it cannot interpret, so an
unreadable command fails the lint instead of escaping the test.
"""

import json
import re
import sys

import yaml

WATCHED_DEFAULTS = ("DatabasePrefix", "WorkGroupName", "StrataProfile")


class Problem(Exception):
    pass


# ---- YAML with CloudFormation's short-form tags ----------------------------------------


class CfnLoader(yaml.SafeLoader):
    pass


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {"Ref" if suffix == "Ref" else "Fn::" + suffix: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def literal_strings(value, where):
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Problem(f"{where}: expected a list of literal strings, found {value!r}")
    return list(value)


# ---- Amazon States Language intrinsic functions (the subset command lines use) ---------


class Intrinsic:
    """Evaluates `States.Array('run', $.x, States.Format('{}', $.n))` against an input."""

    TOKEN = re.compile(r"\s*(?:(?P<str>'(?:\\.|[^'\\])*')|(?P<fn>States\.[A-Za-z]+)\(|"
                       r"(?P<path>\$\$?(?:\.[A-Za-z0-9_]+)*)|(?P<num>-?\d+(?:\.\d+)?)|"
                       r"(?P<punct>[(),]))")

    def __init__(self, text, data, where):
        self.text, self.data, self.where, self.pos = text, data, where, 0

    def fail(self, why):
        raise Problem(f"{self.where}: {why} in {self.text!r} at {self.pos}")

    def next(self):
        m = self.TOKEN.match(self.text, self.pos)
        if not m:
            self.fail("cannot read")
        self.pos = m.end()
        return m

    def value(self):
        m = self.next()
        if m["str"]:
            return re.sub(r"\\(.)", r"\1", m["str"][1:-1])
        if m["num"]:
            return json.loads(m["num"])
        if m["path"]:
            return self.resolve(m["path"])
        if m["fn"]:
            args = []
            while True:
                if self.text[self.pos:].lstrip().startswith(")"):
                    self.next()
                    break
                args.append(self.value())
                sep = self.next()
                if sep["punct"] == ")":
                    break
                if sep["punct"] != ",":
                    self.fail("expected , or )")
            return self.call(m["fn"], args)
        self.fail("unexpected token")

    def resolve(self, path):
        if path.startswith("$$"):
            return "<" + path + ">"
        node = self.data
        for key in path.split(".")[1:]:
            if not isinstance(node, dict) or key not in node:
                self.fail(f"{path} is not in the example input {self.data!r}")
            node = node[key]
        return node

    def call(self, name, args):
        if name == "States.Array":
            return args
        if name == "States.Format":
            template, rest = args[0], list(args[1:])
            out = re.sub(r"\{\}", lambda _: str(rest.pop(0)) if rest else self.fail("missing argument"), template)
            return out
        if name == "States.StringSplit":
            return args[0].split(args[1])
        self.fail(f"{name} is not supported here")

    def evaluate(self):
        result = self.value()
        if self.text[self.pos:].strip():
            self.fail("trailing text")
        return result


# ---- what each resource contributes -----------------------------------------------------


class Inventory:
    def __init__(self):
        self.commands, self.environment, self.containers = [], [], []
        self.freshness_models, self.defaults = set(), {}
        # Athena workgroups: name (or its parameter) -> EnforceWorkGroupConfiguration.
        self.workgroups = {}

    def command(self, kind, source, args, container=None, env=(), wait_for_task_token=False, token_passed=False):
        bad = [a for a in args if not isinstance(a, str)]
        if bad:
            # ECS takes a command of strings only: RunTask would reject this override.
            raise Problem(f"{source}: command arguments must be strings, found {bad!r} (use States.Format)")
        self.commands.append({
            "kind": kind,
            "source": source,
            "args": list(args),
            "container": container,
            "env": sorted(env),
            "wait_for_task_token": wait_for_task_token,
            "token_passed": token_passed,
        })

    def template(self, path):
        with open(path, encoding="utf-8") as f:
            doc = yaml.load(f, Loader=CfnLoader) or {}
        for name, param in (doc.get("Parameters") or {}).items():
            if name in WATCHED_DEFAULTS and "Default" in param:
                seen = self.defaults.setdefault(name, param["Default"])
                if seen != param["Default"]:
                    raise Problem(f"{path}: parameter {name} defaults to {param['Default']!r} here, {seen!r} elsewhere")
        for logical_id, res in (doc.get("Resources") or {}).items():
            where = f"{path}: {logical_id}"
            kind, props = res.get("Type"), res.get("Properties") or {}
            if kind == "AWS::ECS::TaskDefinition":
                self.task_definition(where, props)
            elif kind == "AWS::Scheduler::Schedule":
                self.schedule(where, props)
            elif kind == "AWS::StepFunctions::StateMachine":
                self.state_machine(where, props, res.get("Metadata") or {})
            elif kind == "AWS::Athena::WorkGroup":
                config = props.get("WorkGroupConfiguration") or {}
                self.workgroups[where] = bool(config.get("EnforceWorkGroupConfiguration", False))
            elif kind == "AWS::CloudWatch::Alarm":
                self.alarm(props)

    def task_definition(self, where, props):
        for c in props.get("ContainerDefinitions") or []:
            name = c.get("Name")
            self.containers.append(name)
            for e in c.get("Environment") or []:
                value = e.get("Value")
                self.environment.append({"source": f"{where} container {name}", "name": e["Name"],
                                         "value": value if isinstance(value, str) else None})
            if "Command" in c:
                self.command("task-definition", f"{where} container {name} Command",
                             literal_strings(c["Command"], f"{where} Command"), container=name)

    def schedule(self, where, props):
        target = props.get("Target") or {}
        if "EcsParameters" not in target or "Input" not in target:
            return
        if not isinstance(target["Input"], str):
            raise Problem(f"{where}: Target.Input must be a literal JSON string")
        overrides = json.loads(target["Input"])
        for o in overrides.get("containerOverrides", []):
            env = [e["name"] for e in o.get("environment", [])]
            for n in env:
                self.environment.append({"source": f"{where} Input", "name": n, "value": None})
            if "command" in o:
                self.command("scheduler", f"{where} Target.Input",
                             literal_strings(o["command"], f"{where} Input command"),
                             container=o.get("name"), env=env)

    def state_machine(self, where, props, metadata):
        definition = props.get("Definition")
        if not isinstance(definition, dict):
            raise Problem(f"{where}: write the state machine as a Definition map so cfn-lint validates it")
        example = (metadata.get("strata") or {}).get("ExampleInput", {})
        states = {}
        collect_states(definition, states)
        for state_name, state in states.items():
            resource = state.get("Resource", "")
            if state.get("Type") != "Task" or ":ecs:runTask" not in str(resource):
                continue
            wait = str(resource).endswith(".waitForTaskToken")
            overrides = ((state.get("Parameters") or {}).get("Overrides") or {}).get("ContainerOverrides") or []
            for o in overrides:
                env, token = [], False
                for e in o.get("Environment") or []:
                    env.append(e["Name"])
                    self.environment.append({"source": f"{where} {state_name}", "name": e["Name"], "value": None})
                    token |= e["Name"] == "STRATA_TASK_TOKEN" and e.get("Value.$") == "$$.Task.Token"
                common = dict(container=o.get("Name"), env=env, wait_for_task_token=wait, token_passed=token)
                if "Command" in o:
                    self.command("state-machine", f"{where} state {state_name}",
                                 literal_strings(o["Command"], f"{where} {state_name}"), **common)
                elif "Command.$" in o:
                    for source, args in built_commands(where, states, state_name, o["Command.$"], example):
                        self.command("state-machine", source, args, **common)

    def alarm(self, props):
        stats = [m.get("MetricStat", {}).get("Metric", {}) for m in props.get("Metrics") or []]
        stats.append(props)
        for metric in stats:
            if metric.get("Namespace") == "strata" and metric.get("MetricName") == "FreshnessLagSeconds":
                for d in metric.get("Dimensions") or []:
                    if d.get("Name") == "Model" and isinstance(d.get("Value"), str):
                        self.freshness_models.add(d["Value"])

    def dockerfile(self, path):
        with open(path, encoding="utf-8") as f:
            text = re.sub(r"\\\n", " ", f.read())
        entrypoint, cmd = None, None
        for line in text.splitlines():
            words = line.strip().split(None, 1)
            if len(words) < 2:
                continue
            op, rest = words[0].upper(), words[1]
            if op == "ENV":
                for name in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", rest) or rest.split()[:1]:
                    self.environment.append({"source": f"{path} ENV", "name": name, "value": None})
            elif op == "ENTRYPOINT":
                entrypoint = json.loads(rest)
            elif op == "CMD":
                cmd = json.loads(rest)
        if entrypoint != ["strata"]:
            raise Problem(f"{path}: ENTRYPOINT must be [\"strata\"] (exec form), found {entrypoint!r}")
        if cmd is not None:
            self.command("dockerfile", f"{path} CMD", literal_strings(cmd, f"{path} CMD"))

    def json(self):
        return {
            "commands": self.commands,
            "environment": self.environment,
            "containers": self.containers,
            "freshness_models": sorted(self.freshness_models),
            "defaults": self.defaults,
            "workgroups": self.workgroups,
        }


def collect_states(definition, out):
    for name, state in (definition.get("States") or {}).items():
        out[name] = state
        for branch in state.get("Branches") or []:
            collect_states(branch, out)
        for key in ("Iterator", "ItemProcessor"):
            if isinstance(state.get(key), dict):
                collect_states(state[key], out)


def built_commands(where, states, task_name, expr, example):
    """The argument lists a `Command.$` can take: an intrinsic evaluated directly, or a
    path to `command` in the ResultPath of the Pass states that build it."""
    if expr.startswith("States."):
        return [(f"{where} state {task_name}", Intrinsic(expr, example, f"{where} {task_name}").evaluate())]
    found = []
    for name, state in states.items():
        params = state.get("Parameters") or {}
        result_path = state.get("ResultPath", "$")
        if state.get("Type") == "Pass" and "command.$" in params and f"{result_path}.command" == expr:
            args = Intrinsic(params["command.$"], example, f"{where} {name}").evaluate()
            found.append((f"{where} state {name} -> {task_name}", args))
    if not found:
        raise Problem(f"{where} {task_name}: Command.$ {expr} is not built by any Pass state's command.$")
    for _, args in found:
        if not isinstance(args, list):
            raise Problem(f"{where} {task_name}: the command must be a States.Array(...), found {args!r}")
    return found


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out, files = argv[1], argv[2:]
    inv = Inventory()
    try:
        for path in files:
            if path.endswith((".yaml", ".yml")):
                inv.template(path)
            else:
                inv.dockerfile(path)
    except (Problem, yaml.YAMLError, json.JSONDecodeError, KeyError) as e:
        print(f"infra_commands: {e}", file=sys.stderr)
        return 1
    with open(out, "w", encoding="utf-8") as f:
        json.dump(inv.json(), f, indent=2)
        f.write("\n")
    print(f"infra_commands: {len(inv.commands)} command lines, {len(inv.environment)} environment "
          f"variables -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
