#!/usr/bin/env python3
"""Does infra/template.yaml fit the Rust code it deploys?

Everything the template must provide is derived from the code, so the check
follows the code when it changes:

* environment: exactly the names of shared/src/config.rs's `VARIABLES`
  table, its required ones set;
* IAM: from the handler a function's main.rs runs, the `ConsentStore`
  methods it reaches (through shared/src/handlers too), their SDK calls in
  store/dynamo.rs and the secrets it reads (secrets.rs, directly or through
  the Finexer client): the role grants exactly those actions on the table,
  each queried index's own ARN and those secrets, and the function is
  configured with exactly those secrets' variables;
* routes: against the route table (`cargo run -q -p connect-local --bin
  routes`, or `--routes FILE`): its functions are the crates under
  functions/, each main.rs runs the handler it names, every route is in the
  API on its function's alias and vice versa, authorized exactly where the
  table says (and where the handler reads the caller's claims), invocable
  through a permission, and every public route throttled on its own;
* schedules: a `run_scheduled` function has no route but a `ScheduleV2`
  event sending events/<fn>/scheduled.json, with retries, an encrypted
  dead-letter queue and an `EventInvokeConfig` that sends failed runs there;
* table, secrets: keys, GSIs and TTL as dynamo.rs's create_table() makes
  them; each secret's JSON keys against the secrets.rs part read from it,
  the signing key generated as deployed, every key documented;
* timeout: room for a Finexer call with its retries (a redelivered webhook:
  one attempt after shared/src/deadline.rs's reserve), under API Gateway's
  30 s or, scheduled, under Lambda's 900 s and the schedule's interval;
* CORS as the local stack's stand-in (local/src/cors.rs) applies it; the
  `cargo lambda deploy` settings (workspace's, then each function's
  Cargo.toml) as the template's memory, timeout, tracing and env;
* operations: every metric watched in `!Ref MetricsNamespace` is one
  shared/src/metrics.rs defines; every alarm notifies the SNS topic and links
  its docs/runbook.md section; every function has errors, throttles and p99
  duration alarms, an alias and a DeploymentPreference rolled back by its
  own errors alarm; every queue has a depth alarm.

The template is read as CloudFormation reads it after AWS::LanguageExtensions:
its Fn::ForEach loops expanded by expand() (tested by expansion_cases()).

Run: python3 tests/infra/check_consistency.py [--template PATH] [--routes FILE]
It checks the real template, tests the expansion, then runs negative checks
(mutated copies of the template, as written or expanded, or of the code, that
must be reported) and ends with the line "N passed, M failed".
Needs PyYAML (installed with cfn-lint in .venv-infra).
"""

from __future__ import annotations

import argparse
import atexit
import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import NamedTuple

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"

# The whole SDK-call-to-IAM-action mapping. A call that is not listed here is
# reported, so a new kind of call cannot slip through unmapped.
DYNAMO_CALLS = {
    "get_item": ["dynamodb:GetItem"],
    "put_item": ["dynamodb:PutItem"],
    "update_item": ["dynamodb:UpdateItem"],
    "delete_item": ["dynamodb:DeleteItem"],
    "query": ["dynamodb:Query"],
    "scan": ["dynamodb:Scan"],
    "batch_get_item": ["dynamodb:BatchGetItem"],
    "batch_write_item": ["dynamodb:BatchWriteItem"],
    # Transactions have no IAM action of their own: each item needs its action,
    # taken from the item builders below.
    "transact_write_items": [],
    "transact_get_items": ["dynamodb:GetItem"],
}
TRANSACT_ITEMS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
SECRETS_CALLS = {"get_secret_value": ["secretsmanager:GetSecretValue"]}
# Operations on an index are authorized on the index ARN.
INDEX_ACTIONS = {"dynamodb:Query", "dynamodb:Scan"}
API_GATEWAY_MAX_SECONDS = 30
LAMBDA_MAX_SECONDS = 900
# The state keys secret's GenerateSecretString as the stacks were first
# deployed with it. Any change makes CloudFormation generate a new secret
# value, wiping the state_keys ops put in by hand (infra/README.md).
DEPLOYED_GENERATE_SECRET = {
    "SecretStringTemplate": '{"state_key_id": "initial"}',
    "GenerateStringKey": "state_key",
    "PasswordLength": 64,
    "ExcludePunctuation": True,
}


# ------------------------------------------------------------------ loading


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags, read as their long form."""


def _intrinsic(loader, tag_suffix, node):
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def load_raw(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=CfnLoader)


def load_template(path: Path) -> dict:
    """The template as CloudFormation sees it after AWS::LanguageExtensions:
    Fn::ForEach loops expanded (the checks below read the generated
    resources, as cfn-lint and `sam validate --lint` do)."""
    return expand(load_raw(path))


# ------------------------------------------------------------------ Fn::ForEach
# The part of AWS::LanguageExtensions the template uses, written out so that
# the checks read the resources CloudFormation makes (expansion_cases()
# below tests it): `Fn::ForEach::<loop>: [Identifier, Collection, {key:
# fragment}]` in a mapping makes one copy of the fragment per item, with
# `${Identifier}` and `&{Identifier}` (the item without its non-alphanumeric
# characters) replaced in keys and strings and `!Ref Identifier` replaced by
# the item. The collection is a list or `!FindInMap` of one; loops nest.
# Then every `!FindInMap` whose keys are all literal is resolved (to its
# DefaultValue when the map has no such entry), and a
# `!Sub [string, {name: literal}]` has its literals written into the string.


class ExpansionError(ValueError):
    pass


def _replace(value, ident: str, item: str):
    if isinstance(value, str):
        return value.replace("${" + ident + "}", item).replace("&{" + ident + "}", re.sub(r"[^A-Za-z0-9]", "", item))
    if isinstance(value, list):
        return [_replace(v, ident, item) for v in value]
    if isinstance(value, dict):
        if value == {"Ref": ident}:
            return item
        return {_replace(k, ident, item): _replace(v, ident, item) for k, v in value.items()}
    return value


def _find_in_map(value, mappings: dict):
    args = value.get("Fn::FindInMap") if isinstance(value, dict) and len(value) == 1 else None
    default = args[3] if isinstance(args, list) and len(args) == 4 and isinstance(args[3], dict) else {}
    if isinstance(args, list) and len(args) in (3, 4) and all(isinstance(a, str) for a in args[:3]):
        try:
            return mappings[args[0]][args[1]][args[2]]
        except KeyError:
            if "DefaultValue" in default:
                return default["DefaultValue"]
            raise ExpansionError(f"Fn::FindInMap {args}: no such entry in Mappings") from None
    return None


def _expand(value, mappings: dict):
    if isinstance(value, list):
        return [_expand(v, mappings) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict = {}
    for key, inner in value.items():
        if isinstance(key, str) and key.startswith("Fn::ForEach::"):
            if not (isinstance(inner, list) and len(inner) == 3 and isinstance(inner[2], dict)):
                raise ExpansionError(f"{key}: must be [Identifier, Collection, {{OutputKey: fragment}}]")
            ident, collection, fragment = inner
            items = _expand(collection, mappings)
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise ExpansionError(f"{key}: collection {collection!r} is not a list of strings")
            for item in items:
                for new_key, new_value in _expand(_replace(fragment, ident, item), mappings).items():
                    if new_key in out:
                        raise ExpansionError(f"{key}: {new_key} is made twice")
                    out[new_key] = new_value
            continue
        if key in out:
            raise ExpansionError(f"{key} is made twice")
        out[key] = _expand(inner, mappings)
    found = _find_in_map(out, mappings)
    if found is not None:
        return found
    sub = out.get("Fn::Sub") if len(out) == 1 else None
    if isinstance(sub, list) and len(sub) == 2 and isinstance(sub[0], str) and isinstance(sub[1], dict):
        text, names = sub[0], dict(sub[1])
        for name, literal in list(names.items()):
            if isinstance(literal, (str, int, float)) and not isinstance(literal, bool):
                text = text.replace("${" + name + "}", str(literal))
                del names[name]
        return {"Fn::Sub": [text, names] if names else text}
    return out


def expand(template: dict) -> dict:
    """The template with its Fn::ForEach loops expanded (see above)."""
    mappings = template.get("Mappings", {})
    return {k: (_expand(v, mappings) if k in ("Resources", "Outputs", "Conditions") else v)
            for k, v in template.items()}


def ref_name(value) -> str | None:
    """`!Ref X` -> X; `!GetAtt X.Arn` -> X.Arn; `!Sub ${X.Arn}/rest` -> X.Arn/rest."""
    if isinstance(value, dict) and len(value) == 1:
        (key, inner), = value.items()
        if key == "Ref":
            return inner
        if key == "Fn::GetAtt":
            return ".".join(inner) if isinstance(inner, list) else inner
        if key == "Fn::Sub" and isinstance(inner, str):
            return re.sub(r"\$\{([^}]+)\}", r"\1", inner)
    return None


class Source:
    """The Rust sources, read from the repository unless overridden (tests),
    and the route table (the code's, unless a test hands another)."""

    def __init__(self, root: Path, overrides: dict[str, str] | None = None, routes: dict | None = None):
        self.root = root
        self.overrides = overrides or {}
        self._routes = routes

    def route_table(self) -> dict:
        """{"functions": [{"name", "handler", "scheduled", "routes": [{"key",
        "method", "path", "authorized", "parameters"}]}]}"""
        if self._routes is None:
            self._routes = code_route_table(self.root)
        return self._routes

    def read(self, rel: str) -> str:
        if rel in self.overrides:
            return self.overrides[rel]
        return (self.root / rel).read_text()

    def exists(self, rel: str) -> bool:
        return rel in self.overrides or (self.root / rel).exists()


_ROUTE_TABLES: dict[Path, dict] = {}
# Set by --routes: the table to use instead of running cargo.
ROUTES_FILE: Path | None = None


def code_route_table(root: Path) -> dict:
    """The route table as the code prints it (once per root)."""
    if root not in _ROUTE_TABLES:
        if ROUTES_FILE is not None:
            text = ROUTES_FILE.read_text()
        else:
            command = ["cargo", "run", "-q", "-p", "connect-local", "--bin", "routes"]
            try:
                done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
            except FileNotFoundError:
                raise SystemExit("cargo is not on PATH: it prints the route table (or pass --routes FILE)")
            if done.returncode != 0:
                raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
            text = done.stdout
        _ROUTE_TABLES[root] = json.loads(text)
    return _ROUTE_TABLES[root]


def table_functions(src: "Source") -> dict[str, dict]:
    return {f["name"]: f for f in src.route_table()["functions"]}


def strip_tests(rust: str) -> str:
    return rust.split("#[cfg(test)]", 1)[0]


def strip_comments(rust: str) -> str:
    return re.sub(r"//[^\n]*", "", rust)


def fn_bodies(rust: str) -> dict[str, str]:
    """Each `fn name` in a file and its text up to the next `fn` (good enough
    for this code: no nested fns)."""
    rust = strip_comments(strip_tests(rust))
    starts = [(m.start(), m.group(1)) for m in re.finditer(r"\bfn\s+(\w+)", rust)]
    bodies: dict[str, str] = {}
    for i, (start, name) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(rust)
        bodies[name] = bodies.get(name, "") + rust[start:end]
    return bodies


# ------------------------------------------------------------------ facts from the code


def config_variables(src: Source) -> dict[str, str | None]:
    text = src.read("shared/src/config.rs")
    table = re.search(r"pub const VARIABLES[^=]*=\s*&\[(.*?)\];", text, re.S)
    if not table:
        raise SystemExit("VARIABLES table not found in shared/src/config.rs")
    variables = {}
    for m in re.finditer(r'\(\s*"([A-Z0-9_]+)"\s*,\s*(None|Some\(\s*"([^"]*)"\s*\))', table.group(1)):
        variables[m.group(1)] = m.group(3) if m.group(2) != "None" else None
    if not variables:
        raise SystemExit("VARIABLES table in shared/src/config.rs has no entries")
    return variables


def store_methods(src: Source) -> set[str]:
    text = strip_comments(src.read("shared/src/store/mod.rs"))
    trait = re.search(r"pub trait ConsentStore[^{]*\{(.*?)\n\}", text, re.S)
    return set(re.findall(r"\bfn\s+(\w+)", trait.group(1)))


def string_consts(rust: str) -> dict[str, str]:
    """`const NAME: &str = "value";` (pub or not) -> {NAME: value}."""
    return dict(re.findall(r'\bconst\s+(\w+)\s*:\s*&(?:\'static\s+)?str\s*=\s*"([^"]*)"\s*;', rust))


def index_names(body: str, consts: dict[str, str]) -> set[str]:
    """The indexes a function body names with `.index_name(X)` (a constant or a literal)."""
    names = set()
    for arg in re.findall(r"\.index_name\(\s*([^)]*?)\s*\)", body):
        arg = arg.strip().lstrip("&")
        if arg.startswith('"'):
            names.add(arg.strip('"'))
        else:
            names.add(consts.get(arg.split("::")[-1], f"<unresolved {arg}>"))
    return names


def dynamo_operations(src: Source) -> dict[str, tuple[set[tuple[str, str | None]], set[str]]]:
    """ConsentStore method -> ({(IAM action, index name or None)}, {unmapped
    SDK calls}), following the `self.<helper>()` calls it makes, from
    store/dynamo.rs. A Query or Scan in a function that names an index
    (`.index_name(X)`) is on that index."""
    text = src.read("shared/src/store/dynamo.rs")
    consts = string_consts(strip_comments(text))
    bodies = fn_bodies(text)
    direct: dict[str, set[tuple[str, str | None]]] = {}
    unknown: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    for name, body in bodies.items():
        ops: set[tuple[str, str | None]] = set()
        indexes = index_names(body, consts) if name != "create_table" else set()
        unknown[name] = set()
        for call in re.findall(r"\.client\s*\.\s*(\w+)\s*\(", body):
            if call not in DYNAMO_CALLS:
                unknown[name].add(call)
                continue
            for action in DYNAMO_CALLS[call]:
                if action in INDEX_ACTIONS and indexes:
                    ops |= {(action, index) for index in indexes}
                else:
                    ops.add((action, None))
        for builder in re.findall(r"\b(\w+)::builder\(\)", body):
            if builder in TRANSACT_ITEMS:
                ops.add((TRANSACT_ITEMS[builder], None))
        direct[name] = ops
        calls[name] = set(re.findall(r"\bself\s*\.\s*(\w+)\s*\(", body))

    def resolve(name: str, seen: set[str]) -> tuple[set[tuple[str, str | None]], set[str]]:
        if name in seen or name not in direct:
            return set(), set()
        seen.add(name)
        ops, unmapped = set(direct[name]), {f"{name}(): client.{c}()" for c in unknown[name]}
        for callee in calls[name]:
            more_ops, more_unmapped = resolve(callee, seen)
            ops |= more_ops
            unmapped |= more_unmapped
        return ops, unmapped

    return {name: resolve(name, set()) for name in direct}


def secret_parts(src: Source) -> dict[str, dict]:
    """The secrets the code reads, from shared/src/secrets.rs: for each
    `impl SecretPart for T` (one secret), its variable (`const VARIABLE`),
    the `SecretSource` methods that return it, and its JSON keys (all and
    required, from the serde struct T reads)."""
    text = strip_comments(strip_tests(src.read("shared/src/secrets.rs")))
    parts = {
        m.group(1): {"variable": m.group(2), "methods": set()}
        for m in re.finditer(r'impl\s+SecretPart\s+for\s+(\w+)\s*\{\s*const\s+VARIABLE\s*:\s*&\s*(?:\'static\s+)?str\s*=\s*"(\w+)"', text)
    }
    trait = re.search(r"pub\s+trait\s+SecretSource\b[^{]*\{(.*?)\n\}", text, re.S)
    for method, part in re.findall(r"async\s+fn\s+(\w+)\s*\(\s*&self\s*\)\s*->\s*Result<\s*(?:Option<\s*)?Arc<(\w+)>",
                                   trait.group(1) if trait else ""):
        if part in parts:
            parts[part]["methods"].add(method)
    for part, facts in parts.items():
        facts["fields"], facts["required"] = secret_fields(src, part)
    return parts


def secrets_used(src: Source, texts: list[str]) -> set[str]:
    """The secrets (SecretPart types) code reads: through `.secrets.<method>()`,
    or through the Finexer client (`.finexer.`), which reads those its own
    `self.secrets.<method>()` calls name."""
    parts = secret_parts(src)
    method_part = {m: part for part, facts in parts.items() for m in facts["methods"]}
    finexer = strip_comments(strip_tests(src.read("shared/src/finexer.rs")))
    via_finexer = {method_part[m] for m in re.findall(r"self\s*\.\s*secrets\s*\.\s*(\w+)\s*\(", finexer) if m in method_part}
    used: set[str] = set()
    for text in texts:
        used |= {method_part[m] for m in re.findall(r"\.secrets\s*\.\s*(\w+)\s*\(", text) if m in method_part}
        if re.search(r"\.finexer\s*\.", text):
            used |= via_finexer
    return used


def secrets_operations(src: Source, problems: list[str]) -> set[str]:
    text = strip_comments(strip_tests(src.read("shared/src/secrets.rs")))
    actions: set[str] = set()
    for call in re.findall(r"\.client\s*\.\s*(\w+)\s*\(", text):
        if call not in SECRETS_CALLS:
            problems.append(f"secrets.rs calls client.{call}(), unknown to SECRETS_CALLS")
            continue
        actions.update(SECRETS_CALLS[call])
    return actions


def is_scheduled(src: Source, crate: str) -> bool:
    """Whether main.rs hands its handler to the scheduled runtime
    (`shared::lambda::run_scheduled`) rather than the HTTP one."""
    main = strip_comments(src.read(f"functions/{crate}/src/main.rs"))
    return re.search(r"\brun_scheduled\s*\(", main) is not None


def handler_of(src: Source, crate: str) -> tuple[str, str]:
    """The handler function a function's main.rs runs, and its module file."""
    main = strip_comments(src.read(f"functions/{crate}/src/main.rs"))
    m = re.search(r"shared::handlers::(\w+)", main)
    if not m:
        raise SystemExit(f"functions/{crate}/src/main.rs runs no shared::handlers::<fn>")
    name = m.group(1)
    for path in sorted((src.root / "shared/src/handlers").glob("*.rs")):
        rel = str(path.relative_to(src.root))
        if re.search(rf"pub async fn {name}\s*\(", src.read(rel)):
            return name, rel
    raise SystemExit(f"handler {name} of {crate} not found in shared/src/handlers")


HANDLERS_DIR = "shared/src/handlers"
# A call: `name(`, `module::name(`, `super::name(` or `super::module::name(`,
# not a method call (`.name(`) and not a path's inner segment
# (`a::module::name(`).
CALL = re.compile(r"(?<![\w.:])(?:super\s*::\s*(?=\w+\s*::))?(?:(\w+)\s*::\s*)?(\w+)\s*\(")


def handler_modules(src: Source) -> dict[str, dict[str, str]]:
    """Module name (`mod` for handlers/mod.rs) -> its functions' bodies."""
    modules = {}
    for path in sorted((src.root / HANDLERS_DIR).glob("*.rs")):
        modules[path.stem] = fn_bodies(src.read(f"{HANDLERS_DIR}/{path.name}"))
    return modules


def reachable_helpers(src: Source, handler_file: str, text: str) -> dict[tuple[str, str], str]:
    """(module, fn) -> body of every function in shared/src/handlers that the
    handler module's `text` reaches: helpers of handlers/mod.rs (`name(`,
    `super::name(`), functions of sibling modules (`revocation::finish(`,
    `confirm::new_code(`), and, transitively, what those call, including
    functions of their own module (`name(`)."""
    modules = handler_modules(src)
    own = Path(handler_file).stem

    def callees(body: str, module: str) -> set[tuple[str, str]]:
        found = set()
        for qualifier, name in CALL.findall(body):
            if not qualifier:
                for candidate in (module, "mod"):
                    if name in modules.get(candidate, {}):
                        found.add((candidate, name))
                        break
            elif qualifier == "super" and name in modules.get("mod", {}):
                found.add(("mod", name))
            elif qualifier in modules and qualifier != "mod" and name in modules[qualifier]:
                found.add((qualifier, name))
        return found

    reached: dict[tuple[str, str], str] = {}
    todo = [key for key in callees(text, own) if key[0] != own]
    while todo:
        key = todo.pop()
        if key in reached:
            continue
        reached[key] = modules[key[0]][key[1]]
        todo += [k for k in callees(reached[key], key[0]) if k not in reached and k[0] != own]
    return reached


def handler_needs(src: Source, handler_file: str, problems: list[str]) -> dict:
    """IAM actions a handler needs: {(action, resource_kind)} with resource_kind
    'table', 'index/<name>' or 'secret'; and whether it calls Finexer."""
    methods = store_methods(src)
    ops = dynamo_operations(src)
    text = strip_comments(strip_tests(src.read(handler_file)))
    # Functions of the other handler modules that the handler calls, directly
    # or through each other, count as the handler's.
    texts = [text] + [body for _, body in sorted(reachable_helpers(src, handler_file, text).items())]
    called = set()
    for t in texts:
        called |= {m for m in re.findall(r"\bstore\s*\.\s*(\w+)\s*\(", t) if m in methods}
    needs: set[tuple[str, str]] = set()
    for method in called:
        if method not in ops:
            problems.append(f"{handler_file}: store method {method} has no DynamoStore implementation")
            continue
        actions, unmapped = ops[method]
        for call in sorted(unmapped):
            problems.append(
                f"dynamo.rs {call} is not in the IAM mapping of {Path(__file__).name}; add it to DYNAMO_CALLS"
            )
        for action, index in actions:
            needs.add((action, f"index/{index}" if index else "table"))
    # Finexer calls need the API key, state tokens the signing keys, webhooks
    # the webhook secrets: each from its own secret.
    secrets = secrets_used(src, texts)
    for part in secrets:
        for action in secrets_operations(src, problems):
            needs.add((action, f"secret/{part}"))
    calls_finexer = any(re.search(r"\.finexer\s*\.", t) for t in texts)
    return {"store_methods": called, "needs": needs, "text": text, "calls_finexer": calls_finexer,
            "secrets": secrets}


PROJECTIONS = {"All": "ALL", "KeysOnly": "KEYS_ONLY", "Include": "INCLUDE"}


def table_schema(src: Source) -> dict:
    """The table as dynamo.rs's create_table() makes it: table keys, every
    GSI (name, keys, projection), attribute definitions, and the TTL
    attribute (`TTL_ATTRIBUTE`)."""
    text = src.read("shared/src/store/dynamo.rs")
    consts = string_consts(strip_comments(text))
    ttl = consts.get("TTL_ATTRIBUTE")
    if ttl is None:
        raise SystemExit("const TTL_ATTRIBUTE not found in shared/src/store/dynamo.rs")
    create = fn_bodies(text)["create_table"]
    key_call = r'key\(\s*"(\w+)"\s*,\s*KeyType::(Hash|Range)\s*\)'
    indexes: dict[str, dict] = {}
    # Each GSI is one `GlobalSecondaryIndex::builder() ... .build()` chain: its
    # name, keys and projection; what is left are the table's.
    rest = create
    for chunk in re.findall(r"GlobalSecondaryIndex::builder\(\)(.*?)\.build\(\)\s*\.map_err", create, re.S):
        names = index_names(chunk, consts)
        name = names.pop() if len(names) == 1 else f"<index of create_table: {sorted(names)}>"
        projection = re.search(r"ProjectionType::(\w+)", chunk)
        indexes[name] = {
            "keys": [(n, k.upper()) for n, k in re.findall(key_call, chunk)],
            "projection": PROJECTIONS.get(projection.group(1), projection.group(1)) if projection else None,
        }
        rest = rest.replace(chunk, "", 1)
    table_keys = [(n, k.upper()) for n, k in re.findall(key_call, rest)]
    return {
        "ttl": ttl,
        "indexes": indexes,
        "table_keys": table_keys,
        "attributes": set(re.findall(r'attribute\(\s*"(\w+)"\s*\)', create)),
    }


def secret_fields(src: Source, name: str) -> tuple[set[str], set[str]]:
    """(all, required) top-level JSON keys a secret may/must have, from the
    serde struct `name` deserializes from (following `#[serde(from =
    "X")]` / `try_from`)."""
    text = strip_comments(strip_tests(src.read("shared/src/secrets.rs")))
    structs = {
        m.group(2): (m.group(1), m.group(3))
        for m in re.finditer(r"((?:#\[[^\]]*\]\s*)*)pub(?:\([^)]*\))?\s+struct\s+(\w+)\s*\{(.*?)\n\}", text, re.S)
    }
    structs.update({
        m.group(2): (m.group(1), m.group(3))
        for m in re.finditer(r"((?:#\[[^\]]*\]\s*)*)struct\s+(\w+)\s*\{(.*?)\n\}", text, re.S)
        if m.group(2) not in structs
    })
    attrs, body = structs[name]
    via = re.search(r'#\[serde\([^\]]*\b(?:try_)?from\s*=\s*"(\w+)"', attrs)
    if via and via.group(1) in structs:
        attrs, body = structs[via.group(1)]
    container_default = re.search(r"#\[serde\([^\]]*\bdefault\b", attrs) is not None
    all_fields, required = set(), set()
    for m in re.finditer(r"((?:#\[[^\]]*\]\s*)*)(?:pub(?:\([^)]*\))?\s+)?(\w+)\s*:\s*([^,\n]+),", body):
        field_attrs, field, kind = m.groups()
        rename = re.search(r'rename\s*=\s*"([^"]+)"', field_attrs)
        key = rename.group(1) if rename else field
        all_fields.add(key)
        optional = kind.strip().startswith("Option<") or "default" in field_attrs or container_default
        if not optional:
            required.add(key)
    return all_fields, required


def local_cors(src: Source) -> dict:
    """The CORS the local stack applies, from the constants in local/src/cors.rs."""
    text = strip_comments(strip_tests(src.read("local/src/cors.rs")))

    def const(name: str, kind: str) -> str:
        m = re.search(rf"pub const {name}:\s*{kind}\s*=\s*(.*?);", text, re.S)
        if not m:
            raise SystemExit(f"const {name}: {kind} not found in local/src/cors.rs")
        return m.group(1).strip()

    def strings(name: str) -> list[str]:
        return re.findall(r'"([^"]*)"', const(name, r"&\[&str\]"))

    return {
        "methods": strings("ALLOW_METHODS"),
        "headers": strings("ALLOW_HEADERS"),
        "max_age": int(const("MAX_AGE_SECONDS", r"u\d+")),
        "credentials": const("ALLOW_CREDENTIALS", "bool") == "true",
        "expose": [],  # the stand-in exposes no header
    }


def cors_problems(api: str, cors: dict, local: dict) -> list[str]:
    """Differences between the template's CorsConfiguration and the local stack's."""
    where = f"{api}: CorsConfiguration"
    problems = []

    def listed(key: str) -> list:
        value = cors.get(key, [])
        return value if isinstance(value, list) else [value]

    methods = sorted(str(m).upper() for m in listed("AllowMethods"))
    if methods != sorted(m.upper() for m in local["methods"]):
        problems.append(f"{where} AllowMethods {methods} != local/src/cors.rs ALLOW_METHODS {local['methods']}")
    headers = sorted(str(h).lower() for h in listed("AllowHeaders"))
    if headers != sorted(h.lower() for h in local["headers"]):
        problems.append(f"{where} AllowHeaders {headers} != local/src/cors.rs ALLOW_HEADERS {local['headers']}")
    if cors.get("MaxAge") != local["max_age"]:
        problems.append(f"{where} MaxAge {cors.get('MaxAge')!r} != local/src/cors.rs MAX_AGE_SECONDS {local['max_age']}")
    if cors.get("AllowCredentials", False) is not local["credentials"]:
        problems.append(
            f"{where} AllowCredentials {cors.get('AllowCredentials', False)!r} != local/src/cors.rs "
            f"ALLOW_CREDENTIALS {str(local['credentials']).lower()}"
        )
    expose = sorted(str(h).lower() for h in listed("ExposeHeaders"))
    if expose != sorted(local["expose"]):
        problems.append(f"{where} ExposeHeaders {expose} but the local stack (local/src/cors.rs) exposes none")
    return problems


def deadline_reserve_ms(src: Source) -> int:
    """What shared/src/deadline.rs keeps back from the invocation's time for
    cleanup and for sending the answer: no Finexer attempt starts in it."""
    text = strip_comments(src.read("shared/src/deadline.rs"))
    total = 0
    for name in ("ANSWER_MARGIN", "CLEANUP_RESERVE"):
        m = re.search(rf"const {name}:\s*Duration\s*=\s*Duration::from_(secs|millis)\((\d+)\)", text)
        if not m:
            raise SystemExit(f"const {name}: Duration not found in shared/src/deadline.rs")
        total += int(m.group(2)) * (1000 if m.group(1) == "secs" else 1)
    return total


def finexer_budget(src: Source) -> tuple[int, int]:
    text = src.read("shared/src/finexer.rs")
    attempts = int(re.search(r"const MAX_ATTEMPTS:\s*u32\s*=\s*(\d+)", text).group(1))
    wait = re.search(r"const MAX_INLINE_WAIT:\s*Duration\s*=\s*Duration::from_(secs|millis)\((\d+)\)", text)
    wait_ms = int(wait.group(2)) * (1000 if wait.group(1) == "secs" else 1)
    return attempts, wait_ms


# ------------------------------------------------------------------ the check


# A map with one of these keys is a value (an intrinsic function), not merged.
INTRINSICS = {"Ref", "Fn::Sub", "Fn::GetAtt", "Fn::If", "Fn::FindInMap", "Fn::Join", "Fn::Select"}


def sam_merge(default, value):
    """A value over its Globals one as SAM merges them: maps key by key,
    lists concatenated (Globals' first), anything else replaced."""
    if isinstance(default, dict) and isinstance(value, dict) and not (set(default) | set(value)) & INTRINSICS:
        return default | {k: sam_merge(default[k], v) if k in default else v for k, v in value.items()}
    if isinstance(default, list) and isinstance(value, list):
        return default + value
    return value


def function_prop(template: dict, resource: dict, name: str):
    """A function's property with Globals merged in (sam_merge)."""
    props = resource["Properties"]
    default = template.get("Globals", {}).get("Function", {}).get(name)
    if name not in props:
        return default
    # SAM replaces Architectures rather than merging it.
    return props[name] if default is None or name == "Architectures" else sam_merge(default, props[name])


def function_env(template: dict, resource: dict) -> dict:
    return dict((function_prop(template, resource, "Environment") or {}).get("Variables", {}))


def policy_grants(resource: dict, resources: dict) -> tuple[set[tuple[str, str]], list[str]]:
    """{(action, resource name)} the function's policies grant: inline ones,
    and !Ref of an AWS::IAM::ManagedPolicy of the template."""
    grants, problems = set(), []
    for policy in resource["Properties"].get("Policies", []):
        managed = resources.get(ref_name(policy) or "", {})
        if managed.get("Type") == "AWS::IAM::ManagedPolicy":
            policy = managed["Properties"].get("PolicyDocument", {})
        if not isinstance(policy, dict) or "Statement" not in policy:
            problems.append(f"policy {policy!r} is neither an inline statement list nor !Ref of a managed policy "
                            "of the template (SAM templates and outside policies cannot be checked for least privilege)")
            continue
        for stmt in policy["Statement"]:
            if stmt.get("Effect") != "Allow":
                continue
            actions = stmt.get("Action", [])
            actions = [actions] if isinstance(actions, str) else actions
            targets = stmt.get("Resource", [])
            targets = targets if isinstance(targets, list) else [targets]
            for action in actions:
                for res in targets:
                    name = res if isinstance(res, str) else ref_name(res)
                    grants.add((action, name or json.dumps(res)))
    return grants, problems


def deploy_settings(workspace: dict, package: dict) -> dict | None:
    """What `cargo lambda deploy` uses for a function: the workspace's
    [workspace.metadata.lambda.deploy], then the package's
    [package.metadata.lambda.deploy] over it, tables merged key by key (as
    cargo-lambda's configuration loading does)."""
    def lambda_deploy(table: dict, section: str):
        return table.get(section, {}).get("metadata", {}).get("lambda", {}).get("deploy")

    def merge(base: dict, over: dict) -> dict:
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    found = [d for d in (lambda_deploy(workspace, "workspace"), lambda_deploy(package, "package")) if d is not None]
    return merge(*found) if len(found) == 2 else (found[0] if found else None)


def route_table(template: dict, api_name: str) -> dict[str, dict]:
    body = template["Resources"][api_name]["Properties"].get("DefinitionBody", {})
    routes = {}
    for path, methods in body.get("paths", {}).items():
        for method, op in methods.items():
            if method.startswith("x-") or method == "parameters":
                continue
            integration = op.get("x-amazon-apigateway-integration", {})
            uri = integration.get("uri")
            uri = uri.get("Fn::Sub") if isinstance(uri, dict) else uri
            target = re.search(r":function:\$\{AWS::StackName\}-([\w-]+?)(?::([\w-]+))?/invocations$", uri or "")
            routes[f"{method.upper()} {path}"] = {
                "function": target.group(1) if target else None,
                "qualifier": target.group(2) if target else None,
                "security": op.get("security"),
                "integration": integration,
            }
    return routes


RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")


def schedule_problems(template: dict, resources: dict, logical: str, res: dict, crate: str, src: Source) -> list[str]:
    """A scheduled function's ScheduleV2 event: what it sends is the sample
    event, deliveries are retried, and what still fails, in delivery or in
    the function, lands in an encrypted queue that keeps it a while."""
    where = f"{logical} ({crate})"
    problems = []
    props = res["Properties"]
    schedules = {n: e for n, e in props.get("Events", {}).items() if e.get("Type") == "ScheduleV2"}
    if len(schedules) != 1:
        return [f"{where}: main.rs runs it on a schedule (run_scheduled), but it has {len(schedules)} "
                "ScheduleV2 events, not one"]
    (event_name, event), = schedules.items()
    sprops = event.get("Properties", {})
    here = f"{where}: schedule {event_name}"
    if str(sprops.get("State", "ENABLED")).upper() != "ENABLED":
        problems.append(f"{here}: State must be ENABLED")
    name = ref_name(sprops.get("Name"))
    if not name or "AWS::StackName" not in name:
        problems.append(f"{here}: Name must contain ${{AWS::StackName}} (schedule names are unique per "
                        "account and region; SAM's default, the logical id, is not)")
    expression = str(sprops.get("ScheduleExpression", ""))
    rate = RATE.match(expression)
    interval = None
    if rate:
        interval = int(rate.group(1)) * {"m": 60, "h": 3600, "d": 86400}[rate.group(2)[0]]
    elif not expression.startswith("cron("):
        problems.append(f"{here}: ScheduleExpression {expression!r} is neither rate(...) nor cron(...)")
    timeout = function_prop(template, res, "Timeout")
    if interval and isinstance(timeout, int) and timeout >= interval:
        problems.append(f"{here}: Timeout {timeout}s is not shorter than the schedule's {interval} s: runs would overlap")
    # What the function receives: the Input, exactly the sample event.
    sample_rel = f"events/{crate}/scheduled.json"
    if not src.exists(sample_rel):
        problems.append(f"{here}: {sample_rel} (what the schedule sends, for cargo lambda invoke) is missing")
    else:
        try:
            given = json.loads(sprops.get("Input", "null"))
        except (TypeError, json.JSONDecodeError):
            given = "<not JSON>"
        if given != json.loads(src.read(sample_rel)):
            problems.append(f"{here}: Input {sprops.get('Input')!r} is not {sample_rel}")
    retry = sprops.get("RetryPolicy") or {}
    if not isinstance(retry.get("MaximumRetryAttempts"), int) or not isinstance(retry.get("MaximumEventAgeInSeconds"), int):
        problems.append(f"{here}: RetryPolicy must set MaximumRetryAttempts and MaximumEventAgeInSeconds")
    elif interval and retry["MaximumEventAgeInSeconds"] > interval:
        problems.append(f"{here}: RetryPolicy MaximumEventAgeInSeconds {retry['MaximumEventAgeInSeconds']} "
                        f"outlasts the interval ({interval} s): a late delivery would overlap the next run")

    def queue_of(arn, what: str) -> None:
        queue = (ref_name(arn) or "").removesuffix(".Arn")
        if queue not in resources or resources[queue].get("Type") != "AWS::SQS::Queue":
            problems.append(f"{where}: {what} is not !GetAtt <queue>.Arn of an AWS::SQS::Queue in the template")
            return
        qprops = resources[queue].get("Properties", {})
        if qprops.get("SqsManagedSseEnabled") is not True and "KmsMasterKeyId" not in qprops:
            problems.append(f"{where}: dead-letter queue {queue} must be encrypted (SqsManagedSseEnabled or KmsMasterKeyId)")
        if not isinstance(qprops.get("MessageRetentionPeriod"), int):
            problems.append(f"{where}: dead-letter queue {queue} must set MessageRetentionPeriod")
        if "FifoQueue" in qprops:
            problems.append(f"{where}: dead-letter queue {queue} must be a standard queue (Scheduler refuses FIFO)")

    dead_letter = sprops.get("DeadLetterConfig") or {}
    if "Arn" not in dead_letter:
        problems.append(f"{here}: no DeadLetterConfig with the Arn of the template's queue")
    else:
        queue_of(dead_letter["Arn"], f"schedule {event_name} DeadLetterConfig")
    # Scheduler invokes asynchronously: a run that fails in the function is
    # Lambda's to retry and to send on.
    invoke = props.get("EventInvokeConfig") or {}
    on_failure = (invoke.get("DestinationConfig") or {}).get("OnFailure") or {}
    if not isinstance(invoke.get("MaximumRetryAttempts"), int):
        problems.append(f"{where}: EventInvokeConfig must set MaximumRetryAttempts (Lambda retries a failed run twice by default)")
    if on_failure.get("Type") != "SQS" or "Destination" not in on_failure:
        problems.append(f"{where}: EventInvokeConfig must send failed runs to the dead-letter queue (OnFailure, Type SQS)")
    else:
        queue_of(on_failure["Destination"], "EventInvokeConfig OnFailure")
    return problems


# ------------------------------------------------------------------ operations: alarms, dashboard, deploys

METRICS_RS = "shared/src/metrics.rs"
# The template parameter holding the functions' metric namespace, and the
# variable that hands it to them (shared/src/config.rs reads it).
NAMESPACE_PARAMETER = "MetricsNamespace"
NAMESPACE_VARIABLE = "METRICS_NAMESPACE"
# Stands for ${MetricsNamespace} while the dashboard's JSON is read.
NAMESPACE_MARK = "@@" + NAMESPACE_PARAMETER + "@@"
# The dimension the code gives every metric: the function's binary name.
FUNCTION_DIMENSION = "Function"


RUNBOOK = "docs/runbook.md"


def markdown_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def metric_names(src: Source) -> dict[str, str]:
    """{metric name: Rust constant} from the `pub const X: &str = "Name";`
    lines of shared/src/metrics.rs (any visibility qualifier, `&'static str`,
    line breaks, comments and tests ignored)."""
    text = re.sub(r"/\*.*?\*/", "", src.read(METRICS_RS), flags=re.S)
    text = strip_comments(strip_tests(text))
    found = re.findall(
        r"\bpub(?:\s*\([^)]*\))?\s+const\s+(\w+)\s*:\s*&\s*(?:'static\s+)?str\s*=\s*\"([^\"\\]*)\"\s*;", text)
    return {value: name for name, value in found}


def is_our_namespace(namespace) -> bool:
    return ref_name(namespace) == NAMESPACE_PARAMETER


def alarm_metrics(props: dict) -> list[tuple[object, str, list]]:
    """(namespace, metric name, dimensions) of each metric an alarm watches:
    its own, or each MetricStat of its metric math."""
    watched = []
    if "MetricName" in props:
        watched.append((props.get("Namespace"), props["MetricName"], props.get("Dimensions") or []))
    for query in props.get("Metrics") or []:
        metric = (query.get("MetricStat") or {}).get("Metric") or {}
        if metric:
            watched.append((metric.get("Namespace"), metric.get("MetricName"), metric.get("Dimensions") or []))
    return watched


def dashboard_metrics(logical: str, props: dict) -> tuple[list[tuple[str, str]], list[str]]:
    """([(where, metric name)] of the dashboard's widgets in our namespace,
    problems). Rows are `[namespace, name, dim, value, ..., {options}]` ("."
    repeats the row above) or `[{"expression": ...}]`, whose SEARCH('...')
    terms name the metric with MetricName="X"."""
    body = props.get("DashboardBody")
    if isinstance(body, dict) and "Fn::Sub" in body:
        body = body["Fn::Sub"]
        body = body[0] if isinstance(body, list) else body
    if not isinstance(body, str):
        return [], [f"{logical}: DashboardBody must be a JSON string (or !Sub of one)"]
    text = body.replace("${" + NAMESPACE_PARAMETER + "}", NAMESPACE_MARK)
    text = re.sub(r"\$\{[^}!]+\}", "x", text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        return [], [f"{logical}: DashboardBody is not JSON ({e})"]
    watched, problems = [], []
    for number, widget in enumerate(data.get("widgets", [])):
        wprops = widget.get("properties", {})
        where = f"{logical} widget {number} ({wprops.get('title', widget.get('type'))!r})"
        previous: list = [None, None]
        for row in wprops.get("metrics", []):
            if not row:
                continue
            if isinstance(row[0], dict):
                for search in re.findall(r"SEARCH\(\s*'([^']*)'", row[0].get("expression", "")):
                    if NAMESPACE_MARK not in search:
                        continue
                    names = re.findall(r'MetricName\s*=\s*"?([\w.:/#-]+)"?', search)
                    if not names:
                        problems.append(f"{where}: SEARCH over {NAMESPACE_PARAMETER} names no MetricName=\"...\"")
                    watched += [(where, n) for n in names]
                continue
            namespace = previous[0] if row[0] == "." else row[0]
            name = previous[1] if len(row) > 1 and row[1] == "." else (row[1] if len(row) > 1 else None)
            previous = [namespace, name]
            if namespace == NAMESPACE_MARK:
                watched.append((where, name))
            elif isinstance(namespace, str) and not namespace.startswith("AWS/"):
                problems.append(f"{where}: namespace {namespace!r} is written out; use ${{{NAMESPACE_PARAMETER}}}, "
                                "so the dashboard follows the stack's parameter")
    return watched, problems


def operations_problems(template: dict, by_crate: dict[str, tuple[str, dict]], src: Source) -> list[str]:
    """Alarms, dashboard and safe deploys: every metric watched in our
    namespace is one shared/src/metrics.rs defines; the namespace reaches
    the functions; every alarm notifies the alarm topic; every function has
    its errors, throttles and p99 duration alarms and is deployed through
    its alias with a deployment preference that its errors alarm (among
    others) rolls back; every dead-letter queue has an alarm."""
    problems: list[str] = []
    resources = template.get("Resources", {})
    params = template.get("Parameters", {})
    alarms = {n: r for n, r in resources.items() if r.get("Type") == "AWS::CloudWatch::Alarm"}
    dashboards = {n: r for n, r in resources.items() if r.get("Type") == "AWS::CloudWatch::Dashboard"}
    topics = {n for n, r in resources.items() if r.get("Type") == "AWS::SNS::Topic"}

    # -- our metrics: the names the code emits, in the stack's namespace
    watched: list[tuple[str, str]] = []
    for name, alarm in sorted(alarms.items()):
        for namespace, metric, dims in alarm_metrics(alarm.get("Properties", {})):
            if is_our_namespace(namespace):
                watched.append((name, metric))
                # The code names the function by its binary (crate) name.
                for dim in dims:
                    if dim.get("Name") == FUNCTION_DIMENSION and str(dim.get("Value")) not in by_crate:
                        problems.append(f"{name}: {metric} dimension {FUNCTION_DIMENSION}={dim.get('Value')!r} "
                                        f"is none of the functions ({', '.join(sorted(by_crate))})")
            elif not (isinstance(namespace, str) and namespace.startswith("AWS/")):
                problems.append(f"{name}: namespace {namespace!r} of {metric} is neither an AWS/ one nor "
                                f"!Ref {NAMESPACE_PARAMETER}")
    for name, dashboard in sorted(dashboards.items()):
        found, dashboard_problems = dashboard_metrics(name, dashboard.get("Properties", {}))
        watched += found
        problems += dashboard_problems
    if watched:
        if NAMESPACE_PARAMETER not in params:
            problems.append(f"alarms watch metrics in !Ref {NAMESPACE_PARAMETER}, which is not a parameter")
        for crate, (logical, res) in sorted(by_crate.items()):
            if ref_name(function_env(template, res).get(NAMESPACE_VARIABLE)) != NAMESPACE_PARAMETER:
                problems.append(f"{logical} ({crate}): {NAMESPACE_VARIABLE} must be !Ref {NAMESPACE_PARAMETER} "
                                "(the namespace the alarms and the dashboard watch)")
        default = config_variables(src).get(NAMESPACE_VARIABLE)
        if default is not None and params.get(NAMESPACE_PARAMETER, {}).get("Default") != default:
            problems.append(f"parameter {NAMESPACE_PARAMETER} default {params.get(NAMESPACE_PARAMETER, {}).get('Default')!r} "
                            f"!= shared/src/config.rs {NAMESPACE_VARIABLE} default {default!r}")
    names = metric_names(src)
    if not names:
        problems.append(f"{METRICS_RS}: no `pub const NAME: &str = \"...\";` metric names found")
    for where, metric in watched:
        if metric not in names:
            problems.append(f"{where}: watches metric {metric!r} in {NAMESPACE_PARAMETER}, which "
                            f"{METRICS_RS} does not define (renamed? it defines {', '.join(sorted(names))})")

    # -- every alarm says where on-call reads what to do
    runbook = src.read(RUNBOOK)
    sections = {markdown_anchor(h) for h in re.findall(r"^#{1,6}\s+(.+?)\s*$", runbook, re.M)}
    for name, alarm in sorted(alarms.items()):
        description = alarm.get("Properties", {}).get("AlarmDescription")
        description = ref_name(description) or description or ""
        link = re.search(rf"{re.escape(RUNBOOK)}#([\w-]+)", str(description))
        if not link:
            problems.append(f"{name}: AlarmDescription must link its section of {RUNBOOK} ({RUNBOOK}#<section>)")
        elif link.group(1) not in sections:
            problems.append(f"{name}: AlarmDescription links {RUNBOOK}#{link.group(1)}, which is no heading of {RUNBOOK}")

    # -- every alarm notifies the topic
    if not topics:
        problems.append("no AWS::SNS::Topic for the alarms to notify")
    for name, alarm in sorted(alarms.items()):
        actions = alarm.get("Properties", {}).get("AlarmActions") or []
        if not any(ref_name(a) in topics for a in actions):
            problems.append(f"{name}: AlarmActions must include !Ref of the alarm topic ({', '.join(sorted(topics))})")

    # -- per function: alarms, alias, deployment preference
    # A FunctionName dimension written out or as the function's !Ref (its name).
    deployed = {logical: ref_name(res["Properties"].get("FunctionName")) for logical, res in by_crate.values()}

    def lambda_alarms(crate: str, metric: str) -> list[str]:
        return [
            n for n, a in alarms.items()
            for namespace, m, dims in alarm_metrics(a.get("Properties", {}))
            if namespace == "AWS/Lambda" and m == metric
            and any(d.get("Name") == "FunctionName" and deployed.get(ref_name(d.get("Value")), ref_name(d.get("Value")))
                    == f"AWS::StackName-{crate}" for d in dims)
        ]
    for crate, (logical, res) in sorted(by_crate.items()):
        where = f"{logical} ({crate})"
        for metric in ("Errors", "Throttles", "Duration"):
            if not lambda_alarms(crate, metric):
                problems.append(f"{where}: no alarm on AWS/Lambda {metric} of FunctionName ${{AWS::StackName}}-{crate}")
        timeout = function_prop(template, res, "Timeout")
        for name in lambda_alarms(crate, "Duration"):
            props = alarms[name]["Properties"]
            if props.get("ExtendedStatistic") != "p99":
                problems.append(f"{name}: the duration alarm of {crate} must watch ExtendedStatistic p99")
            threshold = props.get("Threshold")
            if isinstance(timeout, int) and not (isinstance(threshold, (int, float)) and 0 < threshold < timeout * 1000):
                problems.append(f"{name}: Threshold {threshold!r} ms must be under {crate}'s timeout ({timeout * 1000} ms)")
        alias = function_prop(template, res, "AutoPublishAlias")
        if not alias:
            problems.append(f"{where}: no AutoPublishAlias (routes and the schedule call an alias that "
                            "CodeDeploy shifts; without it a deploy replaces the code at once)")
        preference = function_prop(template, res, "DeploymentPreference")
        if not isinstance(preference, dict) or not preference.get("Type"):
            problems.append(f"{where}: no DeploymentPreference with a Type (canary deploys)")
            continue
        if str(preference.get("Enabled", True)).lower() == "false":
            problems.append(f"{where}: DeploymentPreference is disabled")
        rollback = [ref_name(a) for a in preference.get("Alarms") or []]
        if not rollback:
            problems.append(f"{where}: DeploymentPreference has no Alarms: nothing would roll a bad version back")
        for name in rollback:
            if name not in alarms:
                problems.append(f"{where}: DeploymentPreference alarm {name!r} is not an AWS::CloudWatch::Alarm of the template")
        own = lambda_alarms(crate, "Errors")
        if own and not set(own) & set(rollback):
            problems.append(f"{where}: DeploymentPreference Alarms lack its own errors alarm ({', '.join(own)})")

    # -- every dead-letter queue is watched
    for queue, res in sorted(resources.items()):
        if res.get("Type") != "AWS::SQS::Queue":
            continue
        if not any(
            namespace == "AWS/SQS" and metric == "ApproximateNumberOfMessagesVisible"
            and any(ref_name(d.get("Value")) == f"{queue}.QueueName" for d in dims)
            for a in alarms.values() for namespace, metric, dims in alarm_metrics(a.get("Properties", {}))
        ):
            problems.append(f"{queue}: no alarm on its ApproximateNumberOfMessagesVisible")
    return problems


def check(template_path: Path, src: Source, cargo_overrides: dict[str, dict] | None = None) -> list[str]:
    problems: list[str] = []
    template = load_template(template_path)
    resources = template.get("Resources", {})
    variables = config_variables(src)
    required = {name for name, default in variables.items() if default is None}

    functions = {
        name: res for name, res in resources.items() if res.get("Type") == "AWS::Serverless::Function"
    }
    crates = sorted(p.parent.name for p in (src.root / "functions").glob("*/Cargo.toml"))
    by_crate: dict[str, tuple[str, dict]] = {}
    for logical, res in functions.items():
        code_uri = res["Properties"].get("CodeUri", "")
        crate = Path(str(code_uri)).name
        if (template_path.parent / str(code_uri)).resolve() != (src.root / "functions" / crate).resolve() \
                and str(code_uri) != f"../functions/{crate}":
            problems.append(f"{logical}: CodeUri {code_uri} is not ../functions/<crate>")
        by_crate[crate] = (logical, res)
    for crate in crates:
        if crate not in by_crate:
            problems.append(f"functions/{crate} has no AWS::Serverless::Function in the template")
    for crate, (logical, _) in sorted(by_crate.items()):
        if crate not in crates:
            problems.append(f"{logical}: CodeUri names functions/{crate}, which has no Cargo.toml")
    table = table_functions(src)
    for crate in crates:
        if crate not in table:
            problems.append(f"functions/{crate} is not a function of the route table (shared/src/routes.rs)")
    for name in sorted(table.keys() - set(crates)):
        problems.append(f"the route table's function {name} has no functions/{name}/Cargo.toml")

    apis = [n for n, r in resources.items() if r.get("Type") == "AWS::Serverless::HttpApi"]
    tables = {n for n, r in resources.items() if r.get("Type") == "AWS::DynamoDB::Table"}
    secrets = {n for n, r in resources.items() if r.get("Type") == "AWS::SecretsManager::Secret"}
    if len(apis) != 1:
        problems.append(f"expected one AWS::Serverless::HttpApi, found {apis}")
        return problems
    api = apis[0]
    routes = route_table(template, api)
    authorizers = resources[api]["Properties"].get("Auth", {}).get("Authorizers", {})
    jwt_authorizers = {n for n, a in authorizers.items() if "JwtConfiguration" in a}
    permissions = [r for r in resources.values() if r.get("Type") == "AWS::Lambda::Permission"]
    attempts, inline_wait_ms = finexer_budget(src)
    seen_routes: set[str] = set()
    parts = secret_parts(src)
    if not parts:
        problems.append("shared/src/secrets.rs: no `impl SecretPart for T { const VARIABLE ... }` found")
    # secret resource -> the parts (SecretPart types) functions read from it
    secret_users: dict[str, set[str]] = {}

    for crate in crates:
        if crate not in by_crate:
            continue
        logical, res = by_crate[crate]
        props = res["Properties"]
        where = f"{logical} ({crate})"

        # -- build and runtime
        meta = res.get("Metadata", {})
        if meta.get("BuildMethod") != "rust-cargolambda":
            problems.append(f"{where}: Metadata.BuildMethod must be rust-cargolambda")
        if meta.get("BuildProperties", {}).get("Binary") != crate:
            problems.append(f"{where}: Metadata.BuildProperties.Binary must be {crate}")
        if function_prop(template, res, "Handler") != "bootstrap":
            problems.append(f"{where}: Handler must be bootstrap")
        if function_prop(template, res, "Runtime") != "provided.al2023":
            problems.append(f"{where}: Runtime must be provided.al2023")
        if function_prop(template, res, "Architectures") != [{"Ref": "Architecture"}]:
            problems.append(f"{where}: Architectures must be [!Ref Architecture]")
        name = props.get("FunctionName")
        if ref_name(name) != f"AWS::StackName-{crate}":
            problems.append(f"{where}: FunctionName must be !Sub ${{AWS::StackName}}-{crate} (the routes call it by that name)")
        log_group = ref_name(props.get("LoggingConfig", {}).get("LogGroup"))
        if log_group not in resources or resources[log_group].get("Type") != "AWS::Logs::LogGroup":
            problems.append(f"{where}: LoggingConfig.LogGroup must name the function's AWS::Logs::LogGroup")
        elif "RetentionInDays" not in resources[log_group]["Properties"]:
            problems.append(f"{where}: log group {log_group} has no RetentionInDays")

        # -- environment
        env = function_env(template, res)
        for var in sorted(required - env.keys()):
            problems.append(f"{where}: environment lacks required {var} (shared/src/config.rs VARIABLES)")
        for var in sorted(env.keys() - variables.keys()):
            problems.append(f"{where}: environment sets {var}, which shared/src/config.rs does not read")
        table_ref = ref_name(env.get("CONSENT_TABLE"))
        if table_ref not in tables:
            problems.append(f"{where}: CONSENT_TABLE is not !Ref of the template's table")

        # -- IAM: exactly what the code calls
        handler, handler_file = handler_of(src, crate)
        listed = table.get(crate)
        if listed and listed["handler"] != handler:
            problems.append(f"{where}: main.rs runs shared::handlers::{handler}, but the route table "
                            f"gives it {listed['handler']}")
        facts = handler_needs(src, handler_file, problems)
        # -- secrets: configured with exactly those it reads, each the !Ref of a secret
        resource_of = {"table": f"{table_ref}.Arn"}
        for part, facts_of in sorted(parts.items()):
            var = facts_of["variable"]
            ref = ref_name(env.get(var))
            if part in facts["secrets"]:
                if var not in env:
                    problems.append(f"{where}: environment lacks {var}, but {handler} reads that secret ({part})")
                elif ref not in secrets:
                    problems.append(f"{where}: {var} is not !Ref of one of the template's secrets")
                else:
                    resource_of[f"secret/{part}"] = ref
                    secret_users.setdefault(ref, set()).add(part)
            elif var in env:
                problems.append(f"{where}: environment sets {var}, but {handler} never reads that secret ({part}): "
                                "its role would be given a secret it does not use")
        needed = {
            (action, resource_of.get(kind) or (f"<{kind}>" if kind.startswith("secret/") else f"{table_ref}.Arn/{kind}"))
            for action, kind in facts["needs"]
        }
        granted, policy_problems = policy_grants(res, resources)
        problems += [f"{where}: {p}" for p in policy_problems]
        for action, target in sorted(needed - granted):
            problems.append(
                f"{where}: policy lacks {action} on {target} (handler {handler} calls "
                f"{', '.join(sorted(facts['store_methods'])) or 'the secret'})"
            )
        for action, target in sorted(granted - needed):
            problems.append(f"{where}: policy grants {action} on {target}, which the code of {handler} does not need")

        # -- a scheduled function: no route, a schedule that retries and keeps what fails
        scheduled = is_scheduled(src, crate)
        if listed and listed["scheduled"] != scheduled:
            problems.append(f"{where}: main.rs runs it {'on a schedule' if scheduled else 'over HTTP'}, but the "
                            f"route table gives it {'no routes' if listed['scheduled'] else 'routes'}")
        if scheduled:
            for route, found in sorted(routes.items()):
                if found["function"] == crate:
                    problems.append(f"{where}: main.rs runs it on a schedule (run_scheduled), but route {route} integrates it")
            problems += schedule_problems(template, resources, logical, res, crate, src)

        # -- routes and authorization
        alias = function_prop(template, res, "AutoPublishAlias")
        expected = {} if scheduled or not listed else {r["key"]: r for r in listed["routes"]}
        reads_caller = "Caller::from_request" in facts["text"]
        for route, listed_route in sorted(expected.items()):
            seen_routes.add(route)
            authorized = listed_route["authorized"]
            if reads_caller and not authorized:
                problems.append(f"{where}: the route table makes {route} public, but {handler} reads the caller's claims")
            if authorized and not reads_caller:
                problems.append(f"{where}: the route table puts {route} behind the authorizer, but {handler} "
                                "never reads the caller's claims")
            found = routes.get(route)
            if not found:
                problems.append(f"{where}: route {route} (route table) is not in the API")
                continue
            if found["function"] != crate:
                problems.append(f"{where}: route {route} integrates {found['function']}, not {crate}")
            elif alias and found["qualifier"] != alias:
                problems.append(f"{where}: route {route} integrates the function "
                                f"{'unqualified' if not found['qualifier'] else 'as ' + repr(found['qualifier'])}, not its "
                                f"alias {alias!r} (AutoPublishAlias): a canary's traffic split would miss the API")
            integration = found["integration"]
            if integration.get("type") != "aws_proxy" or str(integration.get("payloadFormatVersion")) != "2.0":
                problems.append(f"{where}: route {route} must be an aws_proxy integration, payload format 2.0")
            security = found["security"] or []
            secured = any(set(s) & jwt_authorizers for s in security)
            if authorized and not secured:
                problems.append(f"{where}: route {route} has no JWT authorizer, but the route table makes it authorized")
            if not authorized and security:
                problems.append(f"{where}: route {route} has an authorizer, but the route table makes it public")
            method, path = route.split(" ", 1)
            arn_path = re.sub(r"\{[^}]+\}", "*", path)
            want = f"arn:AWS::Partition:execute-api:AWS::Region:AWS::AccountId:{api}/*/{method}{arn_path}"
            if not any(
                ref_name(p["Properties"].get("FunctionName")) == (f"{logical}.Alias" if alias else logical)
                and ref_name(p["Properties"].get("SourceArn")) == want
                and p["Properties"].get("Principal") == "apigateway.amazonaws.com"
                for p in permissions
            ):
                problems.append(f"{where}: no AWS::Lambda::Permission lets the API invoke it for {route}"
                                + (f" (FunctionName !Ref {logical}.Alias, the alias the route calls)" if alias else ""))

        # -- timeout and memory
        timeout = function_prop(template, res, "Timeout")
        memory = function_prop(template, res, "MemorySize")
        finexer_ms = int(env.get("FINEXER_TIMEOUT_MS") or variables["FINEXER_TIMEOUT_MS"])
        worst_ms = attempts * finexer_ms + (attempts - 1) * inline_wait_ms
        # A signed delivery (a webhook: the handler checks its signature) is
        # delivered again when it fails, so it need not wait out Finexer's
        # retries: one attempt within the deadline's budget is enough.
        redelivered = re.search(r"\bverify_signature\s*\(", facts["text"]) is not None
        reserve_ms = deadline_reserve_ms(src)
        if not isinstance(timeout, int) or timeout < 1:
            problems.append(f"{where}: Timeout {timeout!r} must be a whole number of seconds")
        elif facts["calls_finexer"] and redelivered and timeout * 1000 - reserve_ms < finexer_ms:
            problems.append(f"{where}: Timeout {timeout}s leaves less than one Finexer attempt ({finexer_ms} ms) "
                            f"after the deadline's reserve ({reserve_ms} ms): every delivery would fail while Finexer is slow")
        elif facts["calls_finexer"] and not redelivered and timeout * 1000 <= worst_ms:
            problems.append(f"{where}: Timeout {timeout}s must exceed one Finexer call with retries ({worst_ms} ms)")
        elif not scheduled and timeout >= API_GATEWAY_MAX_SECONDS:
            problems.append(f"{where}: Timeout {timeout}s must stay under API Gateway's {API_GATEWAY_MAX_SECONDS} s")
        elif scheduled and timeout > LAMBDA_MAX_SECONDS:
            problems.append(f"{where}: Timeout {timeout}s is over Lambda's {LAMBDA_MAX_SECONDS} s")

        # -- Cargo.toml [package.metadata.lambda.deploy]
        manifest = (cargo_overrides or {}).get(crate)
        if manifest is None:
            manifest = tomllib.loads(src.read(f"functions/{crate}/Cargo.toml"))
        workspace = (cargo_overrides or {}).get("")
        if workspace is None:
            workspace = tomllib.loads(src.read("Cargo.toml"))
        deploy = deploy_settings(workspace, manifest)
        where_toml = f"functions/{crate}/Cargo.toml deploy settings (with the workspace's)"
        if deploy is None:
            problems.append(f"{where_toml}: missing")
            continue
        if deploy.get("memory") != memory:
            problems.append(f"{where_toml}: memory {deploy.get('memory')} != template MemorySize {memory}")
        if deploy.get("timeout") != timeout:
            problems.append(f"{where_toml}: timeout {deploy.get('timeout')} != template Timeout {timeout}")
        tracing = function_prop(template, res, "Tracing") or "PassThrough"
        if str(deploy.get("tracing", "passthrough")).lower() != str(tracing).lower():
            problems.append(f"{where_toml}: tracing {deploy.get('tracing')} != template Tracing {tracing}")
        deploy_env = deploy.get("env", deploy.get("env_var", {}))
        if isinstance(deploy_env, list):
            deploy_env = dict(item.split("=", 1) for item in deploy_env)
        for var, value in sorted(deploy_env.items()):
            if var not in env:
                problems.append(f"{where_toml}: env {var} is not set by the template")
            elif isinstance(env[var], str) and env[var] != value:
                problems.append(f"{where_toml}: env {var}={value!r} but the template sets {env[var]!r}")
            elif not isinstance(env[var], str):
                problems.append(f"{where_toml}: env {var} is stage-specific in the template; leave it to the stack")
        if not deploy.get("merge_env") and not required <= deploy_env.keys():
            problems.append(f"{where_toml}: without merge_env = true a deploy would drop the stack's "
                            f"{', '.join(sorted(required - deploy_env.keys()))}")

    for route in sorted(set(routes) - seen_routes):
        problems.append(f"API route {route} is not in the route table (shared/src/routes.rs)")

    # -- API settings
    api_props = resources[api]["Properties"]
    if api_props.get("StageName") != "$default":
        problems.append(f"{api}: StageName must be $default (no stage prefix in paths)")
    origins = api_props.get("CorsConfiguration", {}).get("AllowOrigins")
    if origins in (None, "*", ["*"]) or (isinstance(origins, list) and "*" in origins):
        problems.append(f"{api}: CORS AllowOrigins must be the configured frontend origins, not {origins!r}")
    problems += cors_problems(api, api_props.get("CorsConfiguration", {}), local_cors(src))
    default_settings = api_props.get("DefaultRouteSettings", {})
    if not {"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= default_settings.keys():
        problems.append(f"{api}: DefaultRouteSettings must set ThrottlingRateLimit and ThrottlingBurstLimit")
    route_settings = api_props.get("RouteSettings", {})
    for key, settings in route_settings.items():
        if key not in routes:
            problems.append(f"{api}: RouteSettings names {key}, which is not a route")
        for limit in ("ThrottlingRateLimit", "ThrottlingBurstLimit"):
            value = settings.get(limit)
            if not isinstance(value, (int, float)) or value <= 0:
                problems.append(f"{api}: RouteSettings {key} must set {limit} (a positive number), not {value!r}")
    # Anybody can call a public route: each gets its own throttle, so that
    # nobody without a token uses up the others' budget.
    for route, found in sorted(routes.items()):
        if not found["security"] and route not in route_settings:
            problems.append(f"{api}: public route {route} has no RouteSettings throttle of its own")

    # -- table against dynamo.rs
    schema = table_schema(src)
    queried_indexes = {
        index for ops, _ in dynamo_operations(src).values() for _, index in ops if index
    }
    for tname in tables:
        table = resources[tname]
        tprops = table["Properties"]
        if table.get("DeletionPolicy") != "Retain":
            problems.append(f"{tname}: DeletionPolicy must be Retain")
        if tprops.get("BillingMode") != "PAY_PER_REQUEST":
            problems.append(f"{tname}: BillingMode must be PAY_PER_REQUEST")
        if [(k["AttributeName"], k["KeyType"]) for k in tprops.get("KeySchema", [])] != schema["table_keys"]:
            problems.append(f"{tname}: KeySchema differs from dynamo.rs create_table() {schema['table_keys']}")
        indexes = {i["IndexName"]: i for i in tprops.get("GlobalSecondaryIndexes", [])}
        for iname, want in sorted(schema["indexes"].items()):
            index = indexes.get(iname)
            if not index:
                problems.append(f"{tname}: no GSI {iname} (dynamo.rs create_table() makes it)")
                continue
            keys = [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]]
            if keys != want["keys"]:
                problems.append(f"{tname}: GSI {iname} keys {keys} differ from dynamo.rs {want['keys']}")
            projection = index.get("Projection", {}).get("ProjectionType")
            if projection != want["projection"]:
                problems.append(f"{tname}: GSI {iname} projects {projection}, dynamo.rs {want['projection']} "
                                "(what the code reads from it must be there, and no more stored than it reads)")
        for iname in sorted(indexes.keys() - schema["indexes"].keys()):
            problems.append(f"{tname}: GSI {iname} is not made by dynamo.rs create_table()")
        for iname in sorted(queried_indexes - schema["indexes"].keys()):
            problems.append(f"{tname}: the code queries index {iname}, which dynamo.rs create_table() does not make")
        defined = {a["AttributeName"] for a in tprops.get("AttributeDefinitions", [])}
        if defined != schema["attributes"]:
            problems.append(f"{tname}: AttributeDefinitions {sorted(defined)} != dynamo.rs {sorted(schema['attributes'])}")
        ttl = tprops.get("TimeToLiveSpecification", {})
        if ttl.get("AttributeName") != schema["ttl"] or ttl.get("Enabled") is not True:
            problems.append(f"{tname}: TTL must be enabled on {schema['ttl']} (dynamo.rs TTL_ATTRIBUTE)")
        if tprops.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is not True:
            problems.append(f"{tname}: PointInTimeRecovery must be enabled")
        if tprops.get("SSESpecification", {}).get("SSEEnabled") is not True:
            problems.append(f"{tname}: SSE must be enabled")

    # -- each secret's shape against the part of secrets.rs read from it
    docs = src.read("README.md") + src.read("infra/README.md")
    for sname in sorted(secrets):
        users = secret_users.get(sname, set())
        if len(users) != 1:
            problems.append(f"{sname}: read as {sorted(users) or 'nothing'} by the functions; each secret "
                            "holds one of " + ", ".join(sorted(parts)))
            continue
        part, = users
        all_fields, required_fields = parts[part]["fields"], parts[part]["required"]
        sprops = resources[sname]["Properties"]
        generate = sprops.get("GenerateSecretString")
        signing = part in {p for p, f in parts.items() if "state_key" in f["fields"]}
        if signing and (not generate or "SecretString" in sprops):
            problems.append(f"{sname}: the signing key must be generated (GenerateSecretString), never written in the template")
            continue
        if generate:
            changed = {
                k: generate.get(k) for k, v in DEPLOYED_GENERATE_SECRET.items() if generate.get(k) != v
            } | {k: v for k, v in generate.items() if k not in DEPLOYED_GENERATE_SECRET}
            if changed:
                problems.append(
                    f"{sname}: GenerateSecretString differs from the deployed one ({changed}): CloudFormation "
                    "would generate a new secret value, wiping the keys ops put in by hand; put new keys in "
                    "by hand too (infra/README.md)"
                )
            keys = set(json.loads(generate["SecretStringTemplate"])) | {generate["GenerateStringKey"]}
            if generate.get("PasswordLength", 32) < 32:
                problems.append(f"{sname}: PasswordLength must give at least 32 bytes (secrets.rs MIN_KEY_BYTES)")
        else:
            try:
                keys = set(json.loads(sprops.get("SecretString", "")))
            except (TypeError, json.JSONDecodeError):
                problems.append(f"{sname}: SecretString must be the JSON shape of {part} (its keys, empty values)")
                continue
        for key in sorted(required_fields - keys):
            problems.append(
                f"{sname}: its value lacks {key!r}, which shared/src/secrets.rs {part} requires"
                + ("; GenerateSecretString can only add a top-level string, so secrets.rs must accept the generated shape" if generate else "")
            )
        for key in sorted(keys - all_fields):
            problems.append(f"{sname}: key {key!r} is ignored by shared/src/secrets.rs {part}")
        for key in sorted(all_fields):
            if f"`{key}`" not in docs and f".{key}" not in docs:
                problems.append(f"{sname}: key {key!r} (shared/src/secrets.rs {part}) is documented neither in "
                                "README.md nor in infra/README.md")

    problems += operations_problems(template, by_crate, src)
    return list(dict.fromkeys(problems))


# ------------------------------------------------------------------ negative checks
# Each case changes one thing (the template as expanded, the template as
# written, the code, a Cargo.toml or the route table) and names the problem
# check() must then report. A marker that is no longer where a case expects
# it stops the run: a case that changes nothing would pass for nothing.


# The mutated copies, in one directory removed when the check ends.
MUTANTS = Path(tempfile.mkdtemp(prefix="infra-mutants-"))
atexit.register(shutil.rmtree, MUTANTS, ignore_errors=True)


def dump(template: dict) -> Path:
    path = MUTANTS / f"template-{len(list(MUTANTS.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(template, sort_keys=False))
    return path


def expansion_cases() -> list[tuple[str, str | None]]:
    """(description, problem or None): expand() against hand-made templates
    whose expansion is known, and the real template expanded whole."""
    results = []

    def expect(description, template, want=None, error=None):
        try:
            got = expand(template)
        except ExpansionError as e:
            results.append((description, None if error and error in str(e) else f"raised {e}"))
            return
        if error:
            results.append((description, f"expanded to {got}, expected an error containing {error!r}"))
        else:
            results.append((description, None if got == want else f"expanded to {got}, expected {want}"))

    mappings = {"Fns": {"A": {"Name": "a-one", "Routes": ["X", "Y"], "RouteX": "GET/x", "RouteY": "GET/y/*"},
                        "B": {"Name": "b", "Routes": [], "RouteX": "none"}}}
    expect("nested loops, a FindInMap collection, ${}, &{}, !Ref of the identifier, Sub literals folded in",
           {"Mappings": mappings, "Resources": {"Fn::ForEach::Outer": ["Fn", ["A", "B"], {
               "${Fn}Logs": {"Properties": {"Name": {"Fn::Sub": ["/l/${Name}", {"Name": {"Fn::FindInMap": ["Fns", {"Ref": "Fn"}, "Name"]}}]},
                                            "Id": {"Ref": "Fn"}, "Keep": {"Ref": "Other"}}},
               "Fn::ForEach::Inner": ["R", {"Fn::FindInMap": ["Fns", {"Ref": "Fn"}, "Routes"]}, {
                   "${Fn}Invoke${R}&{Fn}": {"Arn": {"Fn::Sub": ["${Api}/${Path}", {"Path": {"Fn::FindInMap": ["Fns", {"Ref": "Fn"}, "Route${R}"]}}]}}}]}]}},
           want={"Mappings": mappings, "Resources": {
               "ALogs": {"Properties": {"Name": {"Fn::Sub": "/l/a-one"}, "Id": "A", "Keep": {"Ref": "Other"}}},
               "AInvokeXA": {"Arn": {"Fn::Sub": "${Api}/GET/x"}},
               "AInvokeYA": {"Arn": {"Fn::Sub": "${Api}/GET/y/*"}},
               "BLogs": {"Properties": {"Name": {"Fn::Sub": "/l/b"}, "Id": "B", "Keep": {"Ref": "Other"}}}}})
    expect("a key made twice", {"Resources": {"Fn::ForEach::L": ["Fn", ["a-b", "ab"], {"X&{Fn}": {}}]}},
           error="Xab is made twice")
    expect("a FindInMap with no such entry",
           {"Mappings": mappings, "Resources": {"Fn::ForEach::L": ["Fn", ["C"], {
               "${Fn}": {"N": {"Fn::FindInMap": ["Fns", {"Ref": "Fn"}, "Name"]}}}]}},
           error="no such entry")
    expect("a collection that is not a list", {"Resources": {"Fn::ForEach::L": ["Fn", "A,B", {"${Fn}": {}}]}},
           error="is not a list of strings")
    text = json.dumps(load_template(TEMPLATE))
    left = sorted(set(re.findall(r"Fn::ForEach::\w+|[$&]\{Fn\}|[$&]\{Route\}|Fn::FindInMap", text)))
    results.append(("infra/template.yaml expands whole (no loop, identifier or FindInMap left)",
                    f"left in the expansion: {left}" if left else None))
    return results


_DELETE = object()
API = ("Resources", "HttpApi", "Properties")
PATHS = API + ("DefinitionBody", "paths")
LOOP = ("Resources", "Fn::ForEach::PerFunction")
DASHBOARD = ("Resources", "Dashboard", "Properties", "DashboardBody")
TABLE_ARN = {"Fn::GetAtt": ["ConsentTable", "Arn"]}


def res(logical: str, *keys) -> tuple:
    """The path of a resource's property."""
    return ("Resources", logical, "Properties", *keys)


def uri(path: str, method: str) -> tuple:
    return PATHS + (path, method, "x-amazon-apigateway-integration", "uri")


def change(path: tuple, value=_DELETE):
    """Set (or, with no value, delete) the place `path` names (missing
    tables on the way are made)."""
    def mutate(node):
        *parents, last = path
        for key in parents:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return mutate


def update(path: tuple, fn):
    """Replace the value at `path` by fn(value)."""
    def mutate(node):
        *parents, last = path
        for key in parents:
            node = node[key]
        node[last] = fn(node[last])
    return mutate


def replace(old: str, new: str = ""):
    """For update(): `old` -> `new` once in a string or an !Sub's string."""
    def fn(value):
        if isinstance(value, dict):
            return {"Fn::Sub": fn(value["Fn::Sub"])}
        if old not in value:
            raise SystemExit(f"negative check: {old!r} is not in {value[:80]!r}...; update the case")
        return value.replace(old, new, 1)
    return fn


def without(item):
    """For update(): the list without `item`."""
    return lambda items: [i for i in items if i != item]


def both(*mutations):
    def mutate(node):
        for m in mutations:
            m(node)
    return mutate


def statements(logical: str, fn):
    """fn(statements) on one function's role, with the managed policies it
    names written into its own (so that one role's grants change alone)."""
    def mutate(t):
        props = t["Resources"][logical]["Properties"]
        own = []
        for policy in props["Policies"]:
            managed = t["Resources"].get(ref_name(policy) or "", {}).get("Properties", {}).get("PolicyDocument")
            own += copy.deepcopy((managed or policy)["Statement"])
        props["Policies"] = [{"Version": "2012-10-17", "Statement": own}]
        fn(own)
    return mutate


def drop_action(action: str):
    def fn(stmts):
        for stmt in stmts:
            acts = stmt["Action"] if isinstance(stmt["Action"], list) else [stmt["Action"]]
            stmt["Action"] = [a for a in acts if a != action]
    return fn


def grant(action: str, resource):
    return lambda stmts: stmts.append({"Effect": "Allow", "Action": action, "Resource": resource})


def query_on(resource):
    """Every Query statement's resource set to `resource`."""
    def fn(stmts):
        for stmt in stmts:
            if stmt["Action"] in ("dynamodb:Query", ["dynamodb:Query"]):
                stmt["Resource"] = resource
    return fn


class Raw(NamedTuple):
    """A mutation of the template as written (Fn::ForEach and Mappings)."""
    mutate: object


class Code(dict):
    """Source files as a case reads them: {path: text}."""


class Cargo(dict):
    """Manifests as a case reads them: {crate ("" for the workspace): parsed Cargo.toml}."""


class Routes(NamedTuple):
    """A mutation of the route table: mutate({function name: function})."""
    mutate: object


def negative_cases(template_path: Path, root: Path):
    """(description, problems found, substring that must be among them)."""

    def code(rel: str, pattern: str, new: str) -> Code:
        """rel with its first match of the regex `pattern` replaced."""
        text = (root / rel).read_text()
        changed, count = re.subn(pattern, new, text, count=1)
        if not count:
            raise SystemExit(f"negative check: {rel} has no {pattern!r}; update the case")
        return Code({rel: changed})

    def cargo(crate: str, path: tuple, value=_DELETE) -> Cargo:
        manifest = tomllib.loads((root / (f"functions/{crate}/Cargo.toml" if crate else "Cargo.toml")).read_text())
        change(path, value)(manifest)
        return Cargo({crate: manifest})

    deploy = ("package", "metadata", "lambda", "deploy")
    schedule = res("ReconcileFunction", "Events", "Every15Minutes", "Properties")
    cases = [
        # -- IAM: each role grants exactly what its code calls
        ("create-link policy without dynamodb:PutItem", "CreateLinkFunction (create-link): policy lacks dynamodb:PutItem",
         statements("CreateLinkFunction", drop_action("dynamodb:PutItem"))),
        ("callback policy without UpdateItem (its transaction's Update items)",
         "CallbackFunction (callback): policy lacks dynamodb:UpdateItem",
         statements("CallbackFunction", drop_action("dynamodb:UpdateItem"))),
        ("consents policy without UpdateItem (a lapsed consent is revoked through revocation.rs)",
         "ConsentsFunction (consents): policy lacks dynamodb:UpdateItem",
         statements("ConsentsFunction", drop_action("dynamodb:UpdateItem"))),
        ("confirm policy without the API key's secret (it revokes at Finexer through revocation.rs)",
         "ConfirmFunction (confirm): policy lacks secretsmanager:GetSecretValue on FinexerApiKeySecret",
         statements("ConfirmFunction", drop_action("secretsmanager:GetSecretValue"))),
        ("revoke policy with an extra dynamodb:Scan", "RevokeFunction (revoke): policy grants dynamodb:Scan",
         statements("RevokeFunction", grant("dynamodb:Scan", TABLE_ARN))),
        ("the policy every function names granting what some do not need (PutItem)",
         "RevokeFunction (revoke): policy grants dynamodb:PutItem on ConsentTable.Arn",
         update(res("FunctionBasePolicy", "PolicyDocument", "Statement"),
                lambda stmts: stmts + [{"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": TABLE_ARN}])),
        ("consents Query granted on the table instead of the by_owner index",
         "policy lacks dynamodb:Query on ConsentTable.Arn/index/by_owner", statements("ConsentsFunction", query_on(TABLE_ARN))),
        ("reconcile's Query granted on the table instead of the due index",
         "ReconcileFunction (reconcile): policy lacks dynamodb:Query on ConsentTable.Arn/index/due",
         statements("ReconcileFunction", query_on(TABLE_ARN))),
        ("webhook policy without DeleteItem (releasing the dedup marker when processing fails)",
         "WebhookFunction (webhook): policy lacks dynamodb:DeleteItem", statements("WebhookFunction", drop_action("dynamodb:DeleteItem"))),
        ("webhook policy without its secrets (webhook_secrets verify fx-signature)",
         "WebhookFunction (webhook): policy lacks secretsmanager:GetSecretValue on WebhookSecrets",
         statements("WebhookFunction", drop_action("secretsmanager:GetSecretValue"))),
        ("revoke's code starts putting items (store.record_event)", "RevokeFunction (revoke): policy lacks dynamodb:PutItem",
         code("shared/src/handlers/revoke.rs", r"let owner = caller\.user_id\.as_str\(\);",
              "let owner = caller.user_id.as_str();\n    app.store.record_event(owner, 0).await?;")),
        # consents reaches finish_as() only through settle_unconfirmed() and
        # revoke_unconfirmed(): the check must follow calls inside revocation.rs.
        ("revocation::finish_as starts putting items (consents reaches it via settle_unconfirmed)",
         "ConsentsFunction (consents): policy lacks dynamodb:PutItem",
         code("shared/src/handlers/revocation.rs", r"pub async fn finish_as\(app: &App, [^{]*\{",
              r"\g<0>\n    app.store.record_event(consent_id, 0).await?;")),

        # -- environment, timeouts, deploy settings
        ("CONSENT_TABLE missing from the environment", "environment lacks required CONSENT_TABLE",
         change(("Globals", "Function", "Environment", "Variables", "CONSENT_TABLE"))),
        ("a new required variable in config.rs", "environment lacks required NEW_REQUIRED_VAR",
         code("shared/src/config.rs", r'\("CONSENT_TABLE", None,', '("NEW_REQUIRED_VAR", None, "x"),\n    ("CONSENT_TABLE", None,')),
        ("timeout shorter than a Finexer call with retries", "must exceed one Finexer call with retries",
         change(("Globals", "Function", "Timeout"), 10)),
        ("a webhook timeout too short for one Finexer attempt",
         "WebhookFunction (webhook): Timeout 5s leaves less than one Finexer attempt",
         (change(res("WebhookFunction", "Timeout"), 5), cargo("webhook", deploy + ("timeout",), 5))),
        ("consents Cargo.toml overrides the workspace's deploy memory, unlike the template",
         "functions/consents/Cargo.toml deploy settings (with the workspace's): memory 256",
         cargo("consents", deploy + ("memory",), 256)),
        ("the workspace's deploy tracing differs from the template",
         "functions/callback/Cargo.toml deploy settings (with the workspace's): tracing passthrough",
         cargo("", ("workspace", "metadata", "lambda", "deploy", "tracing"), "passthrough")),
        ("no deploy settings for cargo lambda deploy (workspace's removed, callback has none)",
         "functions/callback/Cargo.toml deploy settings (with the workspace's): missing",
         cargo("", ("workspace", "metadata"))),

        # -- routes, authorization, CORS
        ("POST /links without the JWT authorizer", "route POST /links has no JWT authorizer",
         change(PATHS + ("/links", "post", "security"))),
        ("POST /consents/{id}/confirm without the JWT authorizer", "route POST /consents/{id}/confirm has no JWT authorizer",
         change(PATHS + ("/consents/{id}/confirm", "post", "security"))),
        ("POST /consents/{id}/reconfirm without the JWT authorizer", "route POST /consents/{id}/reconfirm has no JWT authorizer",
         change(PATHS + ("/consents/{id}/reconfirm", "post", "security"))),
        ("POST /webhooks/finexer given the JWT authorizer (Finexer sends no user token)",
         "route POST /webhooks/finexer has an authorizer, but the route table makes it public",
         change(PATHS + ("/webhooks/finexer", "post", "security"), [{"JwtAuthorizer": []}])),
        ("POST /webhooks/finexer without its own throttle", "public route POST /webhooks/finexer has no RouteSettings throttle",
         change(API + ("RouteSettings", "POST /webhooks/finexer"))),
        ("POST /consents/{id}/reconfirm missing from the API",
         "ConfirmFunction (confirm): route POST /consents/{id}/reconfirm (route table) is not in the API",
         change(PATHS + ("/consents/{id}/reconfirm",))),
        ("a route calling the function unqualified, past the canary's alias",
         "CreateLinkFunction (create-link): route POST /links integrates the function unqualified, not its alias 'live'",
         update(uri("/links", "post"), replace(":live/invocations", "/invocations"))),
        ("a route integrating the scheduled reconciler",
         "main.rs runs it on a schedule (run_scheduled), but route POST /webhooks/finexer integrates it",
         update(uri("/webhooks/finexer", "post"), replace("-webhook:", "-reconcile:"))),
        ("the confirm function missing from the template", "functions/confirm has no AWS::Serverless::Function",
         change(("Resources", "ConfirmFunction"))),
        ("CORS open to every origin", "CORS AllowOrigins must be", change(API + ("CorsConfiguration", "AllowOrigins"), ["*"])),
        ("CORS with credentials again, the local stack without",
         "CorsConfiguration AllowCredentials True != local/src/cors.rs ALLOW_CREDENTIALS false",
         change(API + ("CorsConfiguration", "AllowCredentials"), True)),
        ("CORS MaxAge differs from the local stack's", "CorsConfiguration MaxAge 300 != local/src/cors.rs MAX_AGE_SECONDS",
         change(API + ("CorsConfiguration", "MaxAge"), 300)),
        ("the local stack allows a header the template does not",
         "CorsConfiguration AllowHeaders ['authorization', 'content-type'] != local/src/cors.rs ALLOW_HEADERS",
         code("local/src/cors.rs", r'"content-type"\]', '"content-type", "x-api-key"]')),

        # -- the route table against the template
        ("a route of the API missing from the route table", "API route POST /consents/{id}/reconfirm is not in the route table",
         Routes(lambda f: f["confirm"].update(routes=[r for r in f["confirm"]["routes"]
                                                      if r["key"] != "POST /consents/{id}/reconfirm"]))),
        ("a route of the route table missing from the API",
         "ConsentsFunction (consents): route DELETE /consents/{id} (route table) is not in the API",
         Routes(lambda f: f["consents"]["routes"].append({"key": "DELETE /consents/{id}", "method": "DELETE",
                                                          "path": "/consents/{id}", "authorized": True, "parameters": ["id"]}))),
        ("the route table puts the webhook behind the authorizer, the template does not",
         "route POST /webhooks/finexer has no JWT authorizer, but the route table makes it authorized",
         Routes(lambda f: f["webhook"]["routes"][0].update(authorized=True))),
        ("main.rs runs another handler than the route table names",
         "RevokeFunction (revoke): main.rs runs shared::handlers::revoke, but the route table gives it consents",
         Routes(lambda f: f["revoke"].update(handler="consents"))),
        ("a function of functions/ missing from the route table", "functions/consents is not a function of the route table",
         Routes(lambda f: f["consents"].update(name="listing"))),

        # -- what Fn::ForEach makes, changed where the template says it
        ("no invoke permission for POST /consents/{id}/reconfirm (its name gone from Mappings.Functions Routes)",
         "no AWS::Lambda::Permission lets the API invoke it for POST /consents/{id}/reconfirm",
         Raw(update(("Mappings", "Functions", "Confirm", "Routes"), without("Reconfirm")))),
        ("an invoke permission on the wrong route (Mappings.Functions RouteReconfirm)",
         "no AWS::Lambda::Permission lets the API invoke it for POST /consents/{id}/reconfirm",
         Raw(change(("Mappings", "Functions", "Confirm", "RouteReconfirm"), "POST/consents/*/confirm"))),
        ("the invoke permissions on the function, not on the alias the routes call",
         "WebhookFunction (webhook): no AWS::Lambda::Permission lets the API invoke it for POST /webhooks/finexer "
         "(FunctionName !Ref WebhookFunction.Alias",
         Raw(change(LOOP + (2, "Fn::ForEach::Invoke", 2, "${Fn}Invoke${Route}", "Properties", "FunctionName"),
                    {"Fn::Sub": "${${Fn}Function}"}))),
        ("a function left out of the per-function loop (no log group, no alarms)",
         ("ReconcileFunction (reconcile): LoggingConfig.LogGroup must name the function's AWS::Logs::LogGroup",
          "ReconcileFunction (reconcile): no alarm on AWS/Lambda Errors"),
         Raw(update(LOOP + (1,), without("Reconcile")))),
        ("the loop without the throttles alarm", "ConsentsFunction (consents): no alarm on AWS/Lambda Throttles",
         Raw(change(LOOP + (2, "${Fn}ThrottlesAlarm")))),
        ("a p99 duration threshold in Mappings.Functions at the function's timeout (never fires before it times out)",
         "WebhookDurationAlarm: Threshold 10000 ms must be under webhook's timeout",
         Raw(change(("Mappings", "Functions", "Webhook", "DurationThreshold"), 10000))),

        # -- the reconciler: a schedule, no route; retries; a dead-letter queue
        ("the reconciler's schedule without its dead-letter queue",
         "ReconcileFunction (reconcile): schedule Every15Minutes: no DeadLetterConfig", change(schedule + ("DeadLetterConfig",))),
        ("the reconciler's schedule without a retry policy",
         "RetryPolicy must set MaximumRetryAttempts and MaximumEventAgeInSeconds", change(schedule + ("RetryPolicy",))),
        ("the reconciler's schedule named after its logical id (clashes between stacks)",
         "Name must contain ${AWS::StackName}", change(schedule + ("Name",))),
        ("the schedule sends something else than events/reconcile/scheduled.json",
         "is not events/reconcile/scheduled.json", change(schedule + ("Input",), '{"source": "cron"}')),
        ("the reconciler without a schedule", "main.rs runs it on a schedule (run_scheduled), but it has 0 ScheduleV2 events",
         change(res("ReconcileFunction", "Events"))),
        ("the dead-letter queue unencrypted", "dead-letter queue ReconcileDeadLetters must be encrypted",
         change(res("ReconcileDeadLetters", "SqsManagedSseEnabled"))),
        ("failed reconciler runs sent nowhere (no EventInvokeConfig)",
         "EventInvokeConfig must send failed runs to the dead-letter queue", change(res("ReconcileFunction", "EventInvokeConfig"))),
        ("the reconciler's timeout as long as its interval", "runs would overlap", change(res("ReconcileFunction", "Timeout"), 900)),

        # -- the table against dynamo.rs
        ("the due GSI renamed in the template", "ConsentTable: no GSI due",
         update(res("ConsentTable", "GlobalSecondaryIndexes"),
                lambda indexes: [i | {"IndexName": "due_v2"} if i["IndexName"] == "due" else i for i in indexes])),
        ("dynamo.rs renames the due index (the template still says due)",
         "ConsentTable: no GSI due_at_v2 (dynamo.rs create_table() makes it)",
         code("shared/src/store/dynamo.rs", r'(\bconst\s+\w+\s*:\s*&str\s*=\s*)"due"', r'\1"due_at_v2"')),

        # -- the secrets: one per part, each role reading only those its code reads
        ("state_keys added to GenerateSecretString (regenerates the secret on deployed stacks)",
         "StateKeysSecret: GenerateSecretString differs from the deployed one",
         change(res("StateKeysSecret", "GenerateSecretString", "SecretStringTemplate"), '{"state_key_id": "initial", "state_keys": []}')),
        ("a state-signing key written in the template", "StateKeysSecret: the signing key must be generated",
         both(change(res("StateKeysSecret", "GenerateSecretString")),
              change(res("StateKeysSecret", "SecretString"), '{"state_keys": [{"kid": "a", "key": "written-in-the-template-0123"}]}'))),
        ("a new secret key ops must put in by hand, documented nowhere",
         "StateKeysSecret: key 'undocumented_key' (shared/src/secrets.rs StateKeys) is documented neither",
         code("shared/src/secrets.rs", r"struct StoredStateKeys \{",
              "\\g<0>\n    #[serde(default)]\n    undocumented_key: Option<SecretString>,")),
        ("a role that reads a secret its function does not use (revoke and the state keys)",
         "RevokeFunction (revoke): policy grants secretsmanager:GetSecretValue on StateKeysSecret, which the code of revoke does not need",
         statements("RevokeFunction", grant("secretsmanager:GetSecretValue", {"Ref": "StateKeysSecret"}))),
        ("a function configured with a secret it does not use (webhook and the state keys)",
         "WebhookFunction (webhook): environment sets STATE_KEYS_SECRET_ID, but webhook never reads that secret",
         change(res("WebhookFunction", "Environment", "Variables", "STATE_KEYS_SECRET_ID"), {"Ref": "StateKeysSecret"})),
        ("a function missing a secret it needs (the callback without the state keys)",
         "CallbackFunction (callback): environment lacks STATE_KEYS_SECRET_ID, but callback reads that secret (StateKeys)",
         change(res("CallbackFunction", "Environment"))),
        ("a secret variable naming another part's secret (webhook secrets -> the API key's)",
         "FinexerApiKeySecret: read as ['FinexerApiKey', 'WebhookSecrets'] by the functions",
         change(res("WebhookFunction", "Environment", "Variables", "WEBHOOK_SECRETS_SECRET_ID"), {"Ref": "FinexerApiKeySecret"})),
        ("confirm's code starts reading the state keys (app.secrets.state_keys())",
         "ConfirmFunction (confirm): environment lacks STATE_KEYS_SECRET_ID",
         code("shared/src/handlers/confirm.rs", r"async fn handle\(app: &App, request: Request\)[^{]*\{",
              r"\g<0>\n    let _keys = app.secrets.state_keys().await?;")),

        # -- operations: our metrics, alarms, the alias and canary deploys
        (f"a metric renamed in the code ({METRICS_RS}: FinexerError -> FinexerFailure)",
         "FinexerErrorRateAlarm: watches metric 'FinexerError' in MetricsNamespace, which shared/src/metrics.rs does not define",
         code(METRICS_RS, r'"FinexerError"', '"FinexerFailure"')),
        (f"a metric the dashboard shows removed from the code ({METRICS_RS}: no ColdStart)", "Dashboard widget",
         code(METRICS_RS, r'[^\n]*"ColdStart"[^\n]*', "")),
        ("an alarm watching a metric the code does not emit (WebhookRejected)", "WebhookRefusedAlarm: watches metric 'WebhookRejected'",
         change(res("WebhookRefusedAlarm", "MetricName"), "WebhookRejected")),
        ("the dashboard showing a metric the code does not emit (LinksCreated)", "watches metric 'LinksCreated' in MetricsNamespace",
         update(DASHBOARD, replace('"LinkCreated"', '"LinksCreated"'))),
        ("an alarm with the namespace written out (not the stack's parameter)",
         "RevokePendingOverdueAlarm: namespace 'FinexerConnect' of RevokePendingOverdue is neither",
         change(res("RevokePendingOverdueAlarm", "Namespace"), "FinexerConnect")),
        ("a function emitting into another namespace than the alarms watch",
         "ReconcileFunction (reconcile): METRICS_NAMESPACE must be !Ref MetricsNamespace",
         change(res("ReconcileFunction", "Environment", "Variables", "METRICS_NAMESPACE"), "Other")),
        ("an alarm naming the function by its deployed name, not the code's",
         "CallbackFailureRateAlarm: Callback dimension Function={'Fn::Sub': '${AWS::StackName}-callback'} is none of the functions",
         change(res("CallbackFailureRateAlarm", "Metrics", 1, "MetricStat", "Metric", "Dimensions", 0, "Value"),
                {"Fn::Sub": "${AWS::StackName}-callback"})),
        ("an alarm that notifies nobody", "CallbackFailureRateAlarm: AlarmActions must include !Ref of the alarm topic",
         change(res("CallbackFailureRateAlarm", "AlarmActions"))),
        ("an alarm linking a runbook section that does not exist",
         "DynamoSystemErrorsAlarm: AlarmDescription links docs/runbook.md#dynamo-errors, which is no heading",
         update(res("DynamoSystemErrorsAlarm", "AlarmDescription"), replace("#dynamodb-system-errors", "#dynamo-errors"))),
        ("the dead-letter queue without its alarm", "ReconcileDeadLetters: no alarm on its ApproximateNumberOfMessagesVisible",
         change(("Resources", "ReconcileDeadLettersAlarm"))),
        ("functions deployed without a DeploymentPreference Type (Globals)", "RevokeFunction (revoke): no DeploymentPreference with a Type",
         change(("Globals", "Function", "DeploymentPreference"))),
        ("a function whose canary no alarm rolls back", "RevokeFunction (revoke): DeploymentPreference has no Alarms",
         change(res("RevokeFunction", "DeploymentPreference"))),
        ("a canary not rolled back by the function's own errors",
         "CallbackFunction (callback): DeploymentPreference Alarms lack its own errors alarm",
         update(res("CallbackFunction", "DeploymentPreference", "Alarms"), without({"Ref": "CallbackErrorsAlarm"}))),
        ("functions without AutoPublishAlias", "CreateLinkFunction (create-link): no AutoPublishAlias",
         change(("Globals", "Function", "AutoPublishAlias"))),
    ]

    def run(mutations) -> list[str]:
        template, overrides, manifests, table = template_path, {}, {}, None
        for m in mutations if type(mutations) is tuple else (mutations,):
            if isinstance(m, Code):
                overrides |= m
            elif isinstance(m, Cargo):
                manifests |= m
            elif isinstance(m, Routes):
                table = copy.deepcopy(code_route_table(root))
                m.mutate({f["name"]: f for f in table["functions"]})
            else:
                raw = isinstance(m, Raw)
                t = load_raw(template_path) if raw else load_template(template_path)
                (m.mutate if raw else m)(t)
                template = dump(t)
        return check(template, Source(root, overrides, table), manifests)

    return [(description, run(mutations), expect) for description, expect, mutations in cases]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--routes", type=Path, default=None,
                        help="the route table's JSON (default: cargo run -q -p connect-local --bin routes)")
    parser.add_argument("--skip-negative", action="store_true")
    args = parser.parse_args()
    global ROUTES_FILE
    ROUTES_FILE = args.routes

    passed = failed = 0
    print(f"consistency of {args.template} with the code in {args.root}")
    problems = check(args.template, Source(args.root))
    if problems:
        failed += 1
        print(f"FAIL template/code consistency: {len(problems)} problem(s)")
        for p in problems:
            print(f"  - {p}")
    else:
        passed += 1
        print("ok   template/code consistency")

    for description, problem in expansion_cases():
        if problem:
            failed += 1
            print(f"FAIL expansion: {description}: {problem}")
        else:
            passed += 1
            print(f"ok   expansion: {description}")

    if not args.skip_negative:
        for description, found, expect in negative_cases(args.template, args.root):
            expected = (expect,) if isinstance(expect, str) else expect
            hits = [next((p for p in found if e in p), None) for e in expected]
            if all(hits):
                passed += 1
                print(f"ok   negative: {description}: reported ({'; '.join(hits)})")
            else:
                failed += 1
                missing = [e for e, hit in zip(expected, hits) if not hit]
                print(f"FAIL negative: {description}: expected a problem containing {missing}, got:")
                for p in found:
                    print(f"  - {p}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
