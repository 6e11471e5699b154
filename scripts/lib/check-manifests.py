"""tayori's own rules for its rendered Kubernetes manifests (run by scripts/check-deploy).

The schemas catch misspelt fields; these catch manifests that are valid Kubernetes but wrong for
tayori: a grace period shorter than the worker's, a probe on a port the process does not listen
on, a KEDA trigger pointing at a Deployment or queue that is not ours, more workers than the SES
rate share allows. KEDA's kinds have no schema offline, so their shape is checked here too.

usage: check-manifests.py RENDERED.yaml TAYORI.toml
"""

import sys
import tomllib

import yaml

problems = []

# Where the database's CA bundle is mounted (docs/operations.md, "Encryption in transit").
DATABASE_CA_DIR = "/etc/tayori-database-ca"
DATABASE_CA_CONFIG_MAP = "tayori-database-ca"


def check(condition, message):
    if not condition:
        problems.append(message)


def main(rendered_path, config_path):
    with open(rendered_path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    with open(config_path, "rb") as f:
        config = tomllib.load(f)

    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    deployments = by_kind.get("Deployment", {})
    config_maps = by_kind.get("ConfigMap", {})
    accounts = by_kind.get("ServiceAccount", {})

    for name in ("tayori-worker", "tayori-admin"):
        check(name in deployments, f"Deployment {name} is missing")
    check("tayori-migrate" in by_kind.get("Job", {}), "Job tayori-migrate is missing")

    check("tayori-prune" in by_kind.get("CronJob", {}), "CronJob tayori-prune is missing")
    for name, cron in by_kind.get("CronJob", {}).items():
        args = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].get("args", [])
        if args[:1] == ["prune"]:
            keep = args[args.index("--keep-days") + 1] if "--keep-days" in args else None
            # 4 days on the events queue, 14 in the DLQ (Terraform's defaults), one redrive, and
            # margin: a shorter retention can forget a key a redriven copy still carries.
            check(keep is not None and keep.isdigit() and int(keep) >= 35,
                  f"CronJob {name}: --keep-days must be at least 35, got {keep!r}")
            check(cron["spec"].get("concurrencyPolicy") == "Forbid",
                  f"CronJob {name}: concurrencyPolicy must be Forbid (two prunes only contend)")

    workloads = list(deployments.values()) + list(by_kind.get("Job", {}).values())
    workloads += [cron["spec"]["jobTemplate"] | {"kind": "CronJob", "metadata": cron["metadata"]}
                  for cron in by_kind.get("CronJob", {}).values()]
    for workload in workloads:
        what = f"{workload['kind']} {workload['metadata']['name']}"
        pod = workload["spec"]["template"]["spec"]
        check(pod.get("securityContext", {}).get("runAsNonRoot") is True,
              f"{what}: pod securityContext.runAsNonRoot must be true")
        account = pod.get("serviceAccountName")
        check(account in accounts, f"{what}: ServiceAccount {account!r} is not in the manifests")
        for container in pod["containers"]:
            where = f"{what}, container {container['name']}"
            security = container.get("securityContext", {})
            check(security.get("readOnlyRootFilesystem") is True,
                  f"{where}: readOnlyRootFilesystem must be true")
            check(security.get("allowPrivilegeEscalation") is False,
                  f"{where}: allowPrivilegeEscalation must be false")
            check(security.get("capabilities", {}).get("drop") == ["ALL"],
                  f"{where}: capabilities must drop ALL")
            resources = container.get("resources", {})
            check("cpu" in resources.get("requests", {}) and "memory" in resources.get("requests", {}),
                  f"{where}: cpu and memory requests must be set")
            check("memory" in resources.get("limits", {}), f"{where}: a memory limit must be set")
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    data = config_maps.get(ref["name"], {}).get("data", {})
                    check(ref["key"] in data,
                          f"{where}: env {env['name']} reads ConfigMap {ref['name']} key "
                          f"{ref['key']}, which the manifests do not define")
            # A container that reads the database URL (sslmode=verify-full, sslrootcert under
            # DATABASE_CA_DIR) mounts the CA bundle there.
            reads_database = any(
                env.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "tayori-database"
                for env in container.get("env", [])
            )
            if reads_database:
                mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
                volumes = {v["name"]: v for v in pod.get("volumes", [])}
                ca = [n for n, path in mounts.items() if path == DATABASE_CA_DIR]
                check(ca and volumes.get(ca[0], {}).get("configMap", {}).get("name") == DATABASE_CA_CONFIG_MAP,
                      f"{where}: reads the tayori-database Secret but does not mount ConfigMap "
                      f"{DATABASE_CA_CONFIG_MAP} at {DATABASE_CA_DIR} (the URL's sslrootcert)")
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if port is not None:
                    check(port in ports or port in ports.values(),
                          f"{where}: {probe} uses port {port!r}, which the container does not declare")
            if workload["kind"] == "Deployment":
                check("livenessProbe" in container and "readinessProbe" in container,
                      f"{where}: liveness and readiness probes are required")

    # Every Deployment is covered by a PodDisruptionBudget.
    budgets = by_kind.get("PodDisruptionBudget", {}).values()
    for name, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covered = any(
            all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
            for pdb in budgets
        )
        check(covered, f"Deployment {name} has no PodDisruptionBudget selecting its pods")

    # Every Service targets a named port of the pods it selects.
    for name, service in by_kind.get("Service", {}).items():
        selector = service["spec"]["selector"]
        targets = [d for d in deployments.values()
                   if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v
                          for k, v in selector.items())]
        check(targets, f"Service {name} selects no Deployment's pods")
        for target in targets:
            names = {p["name"] for c in target["spec"]["template"]["spec"]["containers"]
                     for p in c.get("ports", [])}
            for port in service["spec"]["ports"]:
                check(port["targetPort"] in names,
                      f"Service {name}: targetPort {port['targetPort']!r} is not a port of "
                      f"{target['metadata']['name']}")

    worker = deployments.get("tayori-worker")
    if worker:
        pod = worker["spec"]["template"]["spec"]
        container = pod["containers"][0]
        # The kubelet's SIGKILL must come after the worker's own grace period and the final
        # deletes: at least 10 s more than queue.shutdown_grace.
        grace = config.get("queue", {}).get("shutdown_grace", 25)
        check(pod.get("terminationGracePeriodSeconds", 30) >= grace + 10,
              f"tayori-worker: terminationGracePeriodSeconds ({pod.get('terminationGracePeriodSeconds', 30)}) "
              f"must be at least queue.shutdown_grace ({grace}) + 10")
        listen = config.get("http", {}).get("listen", "")
        check(listen.startswith("0.0.0.0:"),
              f"tayori.toml http.listen ({listen!r}) must listen on 0.0.0.0 for the kubelet's probes")
        port = int(listen.rsplit(":", 1)[-1]) if ":" in listen else None
        declared = [p["containerPort"] for p in container.get("ports", [])]
        check(port in declared,
              f"tayori-worker: http.listen port {port} is not a declared container port {declared}")
        check("replicas" not in worker["spec"],
              "tayori-worker: replicas must not be set, KEDA owns them")
        annotation = accounts.get(pod.get("serviceAccountName"), {}).get("metadata", {}) \
            .get("annotations", {}).get("eks.amazonaws.com/role-arn", "")
        check(annotation.startswith("arn:aws") and ":role/" in annotation,
              f"tayori-worker: its ServiceAccount needs an eks.amazonaws.com/role-arn (IRSA), got {annotation!r}")

    # KEDA: shape and wiring, since no schema checks it offline.
    scaled = by_kind.get("ScaledObject", {})
    check(len(scaled) == 1, f"expected one KEDA ScaledObject, found {len(scaled)}")
    for name, so in scaled.items():
        check(so["apiVersion"] == "keda.sh/v1alpha1", f"ScaledObject {name}: apiVersion keda.sh/v1alpha1")
        spec = so["spec"]
        check(spec["scaleTargetRef"]["name"] in deployments,
              f"ScaledObject {name}: scaleTargetRef {spec['scaleTargetRef']['name']!r} is not a Deployment here")
        check(1 <= spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 0),
              f"ScaledObject {name}: need 1 <= minReplicaCount <= maxReplicaCount")
        # The workers divide sender.headroom of the SES rate among themselves whatever their
        # number; the admin server's resends take sender.account_rate_share each beside them.
        sender = config.get("sender", {})
        headroom = sender.get("headroom", 0.9)
        share = sender.get("account_rate_share", 1.0)
        admin = next((d for n, d in deployments.items() if n.startswith("tayori-admin")), None)
        admin_replicas = admin["spec"].get("replicas", 1) if admin else 0
        check(headroom + admin_replicas * share <= 1.0 + 1e-9,
              f"sender.headroom ({headroom}) + {admin_replicas} admin replicas x sender.account_rate_share "
              f"({share}) exceeds the account's SES rate")
        aws = next((m["data"] for n, m in config_maps.items() if n.startswith("tayori-aws")), {})
        # The worker's queues: the shared events queue and the dedicated ones (a TOML array of
        # tables in the ConfigMap, read by the worker as TAYORI_DEDICATED_QUEUES). KEDA must
        # watch each, and nothing else.
        dedicated = tomllib.loads("v = " + aws.get("dedicated_queues", "[]"))["v"]
        queues = [aws.get("events_queue_url")] + [q.get("url") for q in dedicated]
        watched = [t.get("metadata", {}).get("queueURL") for t in spec["triggers"]]
        for queue in queues:
            check(queue in watched, f"ScaledObject {name}: no trigger watches the worker's queue {queue!r}")
        for trigger in spec["triggers"]:
            check(trigger["type"] == "aws-sqs-queue", f"ScaledObject {name}: trigger type {trigger['type']!r}")
            meta = trigger["metadata"]
            check(meta.get("queueURL") in queues,
                  f"ScaledObject {name}: queueURL {meta.get('queueURL')!r} is not one of the worker's queues "
                  f"{queues!r}")
            check(meta.get("awsRegion") == aws.get("region"),
                  f"ScaledObject {name}: awsRegion {meta.get('awsRegion')!r} is not the worker's {aws.get('region')!r}")
            check(str(meta.get("queueLength", "")).isdigit(), f"ScaledObject {name}: queueLength must be a number")
            auth = trigger.get("authenticationRef", {}).get("name")
            check(auth in by_kind.get("TriggerAuthentication", {}),
                  f"ScaledObject {name}: authenticationRef {auth!r} is not a TriggerAuthentication here")
    for name, ta in by_kind.get("TriggerAuthentication", {}).items():
        check(ta["spec"].get("podIdentity", {}).get("provider") == "aws",
              f"TriggerAuthentication {name}: podIdentity.provider must be aws (IRSA)")

    if problems:
        for problem in problems:
            print(f"check-manifests: {rendered_path}: {problem}", file=sys.stderr)
        sys.exit(1)
    print(f"check-manifests: {len(docs)} resources follow tayori's rules")


if __name__ == "__main__":
    main(*sys.argv[1:])
