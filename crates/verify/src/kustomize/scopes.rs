//! Which kinds are namespaced and which cluster-scoped: a built-in table the caller extends.

use std::collections::HashMap;

/// Which kinds are cluster-scoped.
pub(crate) struct Scopes {
    /// group → kind → namespaced (nested so that a lookup by `&str` allocates nothing).
    known: HashMap<String, HashMap<String, bool>>,
}

/// Built-in kinds and their scope (the ones a GitOps tree meets).
const BUILTIN_SCOPES: &[(&str, &str, bool)] = &[
    ("", "Namespace", false),
    ("", "Node", false),
    ("", "PersistentVolume", false),
    ("", "ComponentStatus", false),
    ("", "ConfigMap", true),
    ("", "Secret", true),
    ("", "Service", true),
    ("", "ServiceAccount", true),
    ("", "Pod", true),
    ("", "PersistentVolumeClaim", true),
    ("", "Endpoints", true),
    ("", "LimitRange", true),
    ("", "ResourceQuota", true),
    ("apps", "Deployment", true),
    ("apps", "StatefulSet", true),
    ("apps", "DaemonSet", true),
    ("apps", "ReplicaSet", true),
    ("batch", "Job", true),
    ("batch", "CronJob", true),
    ("rbac.authorization.k8s.io", "ClusterRole", false),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding", false),
    ("rbac.authorization.k8s.io", "Role", true),
    ("rbac.authorization.k8s.io", "RoleBinding", true),
    ("apiextensions.k8s.io", "CustomResourceDefinition", false),
    ("storage.k8s.io", "StorageClass", false),
    ("storage.k8s.io", "CSIDriver", false),
    ("scheduling.k8s.io", "PriorityClass", false),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
        false,
    ),
    ("apiregistration.k8s.io", "APIService", false),
    ("networking.k8s.io", "IngressClass", false),
    ("networking.k8s.io", "Ingress", true),
    ("networking.k8s.io", "NetworkPolicy", true),
    ("node.k8s.io", "RuntimeClass", false),
    ("policy", "PodDisruptionBudget", true),
    ("autoscaling", "HorizontalPodAutoscaler", true),
    ("coordination.k8s.io", "Lease", true),
];

impl Scopes {
    pub(crate) fn new() -> Scopes {
        let mut scopes = Scopes {
            known: HashMap::new(),
        };
        for (g, k, ns) in BUILTIN_SCOPES {
            scopes.insert(g, k, *ns);
        }
        scopes
    }

    pub(crate) fn insert(&mut self, group: &str, kind: &str, namespaced: bool) {
        self.known
            .entry(group.to_owned())
            .or_default()
            .insert(kind.to_owned(), namespaced);
    }

    /// `Some(true)` namespaced, `Some(false)` cluster-scoped, `None` unknown.
    pub(crate) fn namespaced(&self, group: &str, kind: &str) -> Option<bool> {
        self.known.get(group)?.get(kind).copied()
    }
}
