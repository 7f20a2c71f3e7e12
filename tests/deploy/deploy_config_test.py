#!/usr/bin/python3
"""Offline checks of everything under deploy/ and the Dockerfile:

- yamllint (strict, deploy/.yamllint) on every YAML file;
- the kustomize renders (base = CPU, overlays/cuda = GPU, monitoring = the Prometheus operator's
  ServiceMonitor) validated against the upstream Kubernetes and prometheus-operator schemas (npm kubernetes-models, installed with `npm ci` from tests/deploy's lockfile
  into the build tree; skipped, saying so, when npm cannot reach its registry);
- what the schemas cannot see: the resources agree with each other and with the image (selectors
  match the pod labels, probes are grpc.health.v1 on the gRPC port of deploy/mpcd.flags, the grace
  period outlasts the drain, --threads matches the CPU limit, the user is the Dockerfile's...);
- the Prometheus configuration and alert rules (promtool check config, check rules, test rules).

Usage: deploy_config_test.py --source-dir . --work-dir build/deploy_test [--kubectl PATH]
         [--yamllint PATH] [--promtool PATH] [--npm PATH] [--node PATH] [unittest args]
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import unittest

import yaml

ARGS = None


def source(*parts):
    return os.path.join(ARGS.source_dir, *parts)


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)


def require_tool(test, path, package):
    if not path:
        test.skipTest("not installed: %s" % package)
    return path


def flagfile_flags():
    """--name=value pairs of deploy/mpcd.flags."""
    flags = {}
    with open(source("deploy", "mpcd.flags")) as f:
        for line in f:
            match = re.match(r"--(\w+)=(\S+)", line.strip())
            if match:
                flags[match.group(1)] = match.group(2)
    return flags


def args_flags(container):
    return dict(re.match(r"--(\w+)=(\S+)", a).groups() for a in container.get("args", []))


_RENDERS = {}


def kustomize(test, directory):
    if directory not in _RENDERS:
        kubectl = require_tool(test, ARGS.kubectl, "kubectl (for `kubectl kustomize`)")
        _RENDERS[directory] = run([kubectl, "kustomize", source("deploy", "k8s", directory)])
    result = _RENDERS[directory]
    test.assertEqual(result.returncode, 0, result.stderr)
    return result.stdout


class Rendered:
    """The kustomize output of one directory, by kind."""

    def __init__(self, test, directory):
        self.text = kustomize(test, directory)
        self.by_kind = {}
        for doc in yaml.safe_load_all(self.text):
            test.assertNotIn(doc["kind"], self.by_kind, "one of each kind expected")
            self.by_kind[doc["kind"]] = doc

    def __getitem__(self, kind):
        return self.by_kind[kind]


def cpu_millicores(quantity):
    quantity = str(quantity)
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


class YamlLintTest(unittest.TestCase):
    def test_every_yaml_file_is_lint_clean(self):
        yamllint = require_tool(self, ARGS.yamllint, "yamllint (apt-get install yamllint)")
        result = run([yamllint, "-s", "-c", source("deploy", ".yamllint"), source("deploy")])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)


class SchemaTest(unittest.TestCase):
    """Every rendered document against the Kubernetes OpenAPI schemas."""

    @classmethod
    def setUpClass(cls):
        cls.node_modules = os.path.join(ARGS.work_dir, "node_modules")
        cls.setup_error = None
        # Installed already, from the same lockfile (a new dependency reinstalls).
        installed_lock = os.path.join(ARGS.work_dir, "package-lock.json")
        if os.path.isdir(cls.node_modules) and os.path.isfile(installed_lock):
            lock = source("tests", "deploy", "package-lock.json")
            with open(installed_lock) as a, open(lock) as b:
                if a.read() == b.read():
                    return
        if not ARGS.npm or not ARGS.node:
            cls.setup_error = "node/npm not installed"
            return
        os.makedirs(ARGS.work_dir, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(source("tests", "deploy", name), ARGS.work_dir)
        result = run([ARGS.npm, "ci", "--no-audit", "--no-fund"], cwd=ARGS.work_dir)
        if result.returncode != 0:
            cls.setup_error = "npm ci failed (registry unreachable?): " + result.stderr[-500:]

    def validate(self, text):
        if self.setup_error:
            self.skipTest(self.setup_error)
        result = run([ARGS.node, source("tests", "deploy", "validate_k8s.js"), "-"], input=text,
                     env=dict(os.environ, NODE_PATH=self.node_modules))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        return result.stdout

    def test_cpu_manifests_match_the_schemas(self):
        out = self.validate(Rendered(self, "base").text)
        for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                     "NetworkPolicy"):
            self.assertIn("ok -: %s/mpcd" % kind, out)

    def test_service_monitor_matches_the_operator_schema(self):
        out = self.validate(Rendered(self, "monitoring").text)
        self.assertIn("ok -: ServiceMonitor/mpcd", out)

    def test_the_validator_rejects_a_bad_service_monitor(self):
        text = Rendered(self, "monitoring").text.replace("interval: 15s", "interval: 15")
        if self.setup_error:
            self.skipTest(self.setup_error)
        result = run([ARGS.node, source("tests", "deploy", "validate_k8s.js"), "-"], input=text,
                     env=dict(os.environ, NODE_PATH=self.node_modules))
        self.assertEqual(result.returncode, 1)
        self.assertIn("interval must be string", result.stderr)

    def test_cuda_manifests_match_the_schemas(self):
        out = self.validate(Rendered(self, "overlays/cuda").text)
        self.assertIn("ok -: Deployment/mpcd", out)

    def test_the_validator_rejects_a_bad_manifest(self):
        text = Rendered(self, "base").text.replace("containerPort: 50051",
                                                   "containerPort: grpc-port")
        if self.setup_error:
            self.skipTest(self.setup_error)
        result = run([ARGS.node, source("tests", "deploy", "validate_k8s.js"), "-"], input=text,
                     env=dict(os.environ, NODE_PATH=self.node_modules))
        self.assertEqual(result.returncode, 1)
        self.assertIn("containerPort must be integer", result.stderr)


class ConsistencyTest(unittest.TestCase):
    """What a schema cannot check: the pieces fit together and fit the image."""

    def setUp(self):
        self.base = Rendered(self, "base")
        self.pod = self.base["Deployment"]["spec"]["template"]
        self.container = self.pod["spec"]["containers"][0]
        self.ports = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        self.flags = flagfile_flags()

    def assert_selects_pods(self, selector):
        labels = self.pod["metadata"]["labels"]
        for key, value in selector.items():
            self.assertEqual(labels.get(key), value, "selector %s does not match the pods" % key)

    def test_ports_are_the_flagfile_ports(self):
        self.assertEqual(self.ports["grpc"], int(self.flags["port"]))
        self.assertEqual(self.ports["metrics"], int(self.flags["metrics_port"]))
        env = {e["name"]: e["value"] for e in self.container.get("env", [])}
        self.assertEqual(int(env["MPCD_PORT"]), self.ports["grpc"])
        annotations = self.pod["metadata"]["annotations"]
        self.assertEqual(annotations["prometheus.io/scrape"], "true")
        self.assertEqual(int(annotations["prometheus.io/port"]), self.ports["metrics"])

    def test_probes_are_grpc_health_checks_on_the_grpc_port(self):
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(self.container[probe]["grpc"]["port"], self.ports["grpc"], probe)
        # Readiness asks for the MpcService (NOT_SERVING as soon as a drain starts).
        with open(source("server", "mpc_server.h")) as f:
            served = re.search(r'kServiceName\[\] = "([\w.]+)"', f.read()).group(1)
        self.assertEqual(self.container["readinessProbe"]["grpc"]["service"], served)
        self.assertNotIn("service", self.container["livenessProbe"]["grpc"])

    def test_termination_grace_outlasts_prestop_and_drain(self):
        grace = self.pod["spec"]["terminationGracePeriodSeconds"]
        pre_stop = self.container["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre_stop[0], "/bin/sleep")
        drain = float(args_flags(self.container)["shutdown_grace_s"])
        self.assertGreater(grace, float(pre_stop[1]) + drain + 5)

    def test_resources_are_bounded_and_threads_match_the_cpu_limit(self):
        resources = self.container["resources"]
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                self.assertIn(resource, resources[kind])
        threads = int(args_flags(self.container)["threads"])
        self.assertEqual(threads * 1000, cpu_millicores(resources["limits"]["cpu"]))
        flags = args_flags(self.container)
        bounds = sum(int(flags[name]) for name in (
            "max_queue_bytes", "max_workspace_bytes", "max_session_bytes", "max_response_bytes"))
        memory = resources["limits"]["memory"]
        self.assertTrue(memory.endswith("Gi"))
        self.assertLess(bounds, int(memory[:-2]) * 2**30 * 3 // 4,
                        "the memory bounds must leave room for everything else")

    def test_runs_as_the_image_user_without_privileges(self):
        with open(source("Dockerfile")) as f:
            dockerfile = f.read()
        user = re.search(r"^USER (\d+)", dockerfile, re.MULTILINE).group(1)
        security = self.pod["spec"]["securityContext"]
        self.assertTrue(security["runAsNonRoot"])
        self.assertEqual(str(security["runAsUser"]), user)
        container_security = self.container["securityContext"]
        self.assertFalse(container_security["allowPrivilegeEscalation"])
        self.assertTrue(container_security["readOnlyRootFilesystem"])
        self.assertEqual(container_security["capabilities"]["drop"], ["ALL"])

    def test_headless_service_selects_the_pods_and_names_their_ports(self):
        service = self.base["Service"]["spec"]
        self.assertEqual(service["clusterIP"], "None")
        # Clients of a headless Service find new pods only when they reconnect.
        self.assertGreater(float(args_flags(self.container)["max_connection_age_s"]), 0)
        self.assert_selects_pods(service["selector"])
        for port in service["ports"]:
            self.assertIn(port["targetPort"], self.ports)
            self.assertEqual(port["port"], self.ports[port["targetPort"]])

    def test_network_policy_opens_grpc_and_keeps_metrics_for_prometheus(self):
        policy = self.base["NetworkPolicy"]["spec"]
        self.assert_selects_pods(policy["podSelector"]["matchLabels"])
        self.assertEqual(policy["policyTypes"], ["Ingress"])
        rules = {rule["ports"][0]["port"]: rule for rule in policy["ingress"]}
        self.assertEqual(set(rules), {"grpc", "metrics"})
        for name in rules:
            self.assertIn(name, self.ports)  # named ports of the container
        self.assertNotIn("from", rules["grpc"])  # clients may come from anywhere
        peers = rules["metrics"]["from"]
        self.assertTrue(peers, "/metrics must not be open to every peer")
        for peer in peers:  # every peer is narrowed to a namespace and to pods
            self.assertTrue(peer["namespaceSelector"]["matchLabels"])
            self.assertTrue(peer["podSelector"]["matchLabels"])

    def test_service_monitor_scrapes_the_metrics_port_of_the_service(self):
        monitor = Rendered(self, "monitoring")["ServiceMonitor"]
        service = self.base["Service"]
        for key, value in monitor["spec"]["selector"]["matchLabels"].items():
            self.assertEqual(service["metadata"]["labels"].get(key), value)
        service_ports = {p["name"]: p for p in service["spec"]["ports"]}
        (endpoint,) = monitor["spec"]["endpoints"]
        self.assertEqual(service_ports[endpoint["port"]]["targetPort"], "metrics")
        self.assertEqual(service_ports[endpoint["port"]]["port"],
                         int(self.flags["metrics_port"]))
        self.assertEqual(endpoint["path"], "/metrics")

    def test_autoscaler_and_disruption_budget_fit_the_deployment(self):
        hpa = self.base["HorizontalPodAutoscaler"]["spec"]
        self.assertEqual(hpa["scaleTargetRef"]["kind"], "Deployment")
        self.assertEqual(hpa["scaleTargetRef"]["name"], self.base["Deployment"]["metadata"]["name"])
        self.assertLessEqual(hpa["minReplicas"], hpa["maxReplicas"])
        pdb = self.base["PodDisruptionBudget"]["spec"]
        self.assert_selects_pods(pdb["selector"]["matchLabels"])
        # A drain must leave at least one pod serving.
        self.assertLess(pdb["maxUnavailable"], hpa["minReplicas"])
        self.assert_selects_pods(self.base["Deployment"]["spec"]["selector"]["matchLabels"])

    def test_cuda_overlay_requests_a_gpu_and_the_cuda_backend(self):
        cuda = Rendered(self, "overlays/cuda")
        container = cuda["Deployment"]["spec"]["template"]["spec"]["containers"][0]
        for kind in ("requests", "limits"):
            self.assertEqual(int(container["resources"][kind]["nvidia.com/gpu"]), 1)
        flags = args_flags(container)
        self.assertEqual(flags["backend"], "cuda")
        self.assertEqual(int(flags["threads"]) * 1000,
                         cpu_millicores(container["resources"]["limits"]["cpu"]))
        self.assertNotEqual(container["image"], self.container["image"])
        # Everything else (probes, drain, security) is inherited from the base.
        for key in ("readinessProbe", "livenessProbe", "lifecycle", "securityContext"):
            self.assertEqual(container[key], self.container[key])

    def test_kubernetes_scrape_job_keeps_these_pods(self):
        with open(source("deploy", "prometheus", "kubernetes-scrape-config.yml")) as f:
            job = yaml.safe_load(f)["scrape_configs"][0]
        keep = {r["source_labels"][0]: r["regex"] for r in job["relabel_configs"]
                if r.get("action") == "keep"}
        self.assertEqual(keep["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
                         self.pod["metadata"]["labels"]["app.kubernetes.io/name"])
        self.assertEqual(keep["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                         self.pod["metadata"]["annotations"]["prometheus.io/scrape"])


class DockerfileTest(unittest.TestCase):
    def test_image_shape(self):
        with open(source("Dockerfile")) as f:
            dockerfile = f.read()
        stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?", dockerfile, re.MULTILINE)
        names = [name for _, name in stages]
        # The build argument picks a builder and a runtime stage for each variant.
        for variant in ("cpu", "cuda"):
            self.assertIn("builder-" + variant, names)
            self.assertIn("runtime-" + variant, names)
        self.assertEqual(stages[-1][0], "runtime-${VARIANT}")
        self.assertRegex(dockerfile, r"ARG VARIANT=cpu")
        self.assertRegex(dockerfile, r"(?m)^HEALTHCHECK .*\n.*mpcctl health")
        self.assertRegex(dockerfile, r"(?m)^USER [1-9]\d*")
        # The runtime stage installs no compiler or -dev package.
        runtime = dockerfile[dockerfile.index("AS runtime-cpu"):]
        self.assertNotRegex(runtime, r"-dev\b|\bg\+\+|cmake")


    def test_builder_copies_every_directory_the_build_needs(self):
        with open(source("Dockerfile")) as f:
            copied = set(re.findall(r"^COPY (?!--)(\S+) ", f.read(), re.MULTILINE))
        with open(source("CMakeLists.txt")) as f:
            cmake = f.read()
        # What the top CMakeLists adds outside tests and benchmarks (the image builds neither).
        needed = set(re.findall(r"add_subdirectory\((\w+)\)", cmake)) - {"tests", "bench"}
        self.assertIn("common", needed)
        self.assertLessEqual(needed | {"cmake", "CMakeLists.txt"}, copied)


class PrometheusTest(unittest.TestCase):
    def test_config_and_rules_are_valid(self):
        promtool = require_tool(self, ARGS.promtool, "promtool (apt-get install prometheus)")
        result = run([promtool, "check", "config", source("deploy", "prometheus",
                                                          "prometheus.yml")])
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("SUCCESS: 7 rules found", result.stdout)

    def test_alerts_fire_on_their_series(self):
        promtool = require_tool(self, ARGS.promtool, "promtool (apt-get install prometheus)")
        result = run([promtool, "test", "rules", "mpcd-alerts.test.yml"],
                     cwd=source("deploy", "prometheus"))
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_alert_rules_use_metrics_the_server_exports(self):
        with open(source("deploy", "prometheus", "mpcd-alerts.yml")) as f:
            rules = f.read()
        with open(source("server", "service_metrics.cc")) as f:
            exported = set(re.findall(r'\.Name\("(mpcd_\w+)"\)', f.read()))
        used = set(re.findall(r"\b(mpcd_[a-z_]+?)(?:_bucket|_sum|_count)?\b(?=[{\[])", rules))
        self.assertTrue(used)
        self.assertLessEqual(used, exported)


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--work-dir", required=True)
    for tool in ("kubectl", "yamllint", "promtool", "npm", "node"):
        parser.add_argument("--" + tool, default=shutil.which(tool) or "")
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0]] + rest)


if __name__ == "__main__":
    main()
