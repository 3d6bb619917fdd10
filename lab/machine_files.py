"""The configuration files a lab node carries, as a kubeadm-built node on containerd has them."""

from __future__ import annotations

KUBELET_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
evictionHard:
  imagefs.available: 15%
  memory.available: 100Mi
  nodefs.available: 10%
  nodefs.inodesFree: 5%
failSwapOn: true
healthzBindAddress: 127.0.0.1
healthzPort: 10248
imageGCHighThresholdPercent: 85
imageGCLowThresholdPercent: 80
maxPods: 110
nodeStatusReportFrequency: 1m0s
nodeStatusUpdateFrequency: 10s
podPidsLimit: -1
rotateCertificates: true
runtimeRequestTimeout: 2m0s
serverTLSBootstrap: true
staticPodPath: /etc/kubernetes/manifests
"""

KUBELET_KUBECONFIG = """\
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca_b64}
    server: {server}
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
kind: Config
preferences: {{}}
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
"""

KUBEADM_DROPIN = """\
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
--kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS \
$KUBELET_EXTRA_ARGS
"""

KUBEADM_FLAGS = """\
KUBELET_KUBEADM_ARGS="--node-ip={ip} --pod-infra-container-image=registry.k8s.io/pause:3.10"
"""

CONTAINERD_CONFIG = """\
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "registry.k8s.io/pause:3.10"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = true
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/opt/cni/bin"
      conf_dir = "/etc/cni/net.d"
"""

FSTAB = """\
# /etc/fstab: static file system information.
UUID=5b8e2f7a-3c1d-4e0b-9a51-7f3d2c1b0a98 /          ext4   defaults,discard 0 1
UUID=A1B2-C3D4                            /boot/efi  vfat   umask=0077       0 1
"""

SWAP_FSTAB_LINE = ("/swap.img                                 none       swap   sw"
                   "               0 0\n")

CALICO_CONFLIST = """\
{
  "name": "k8s-pod-network",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "calico",
      "log_level": "info",
      "datastore_type": "kubernetes",
      "mtu": 0,
      "ipam": {"type": "calico-ipam"},
      "policy": {"type": "k8s"},
      "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"}
    },
    {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}},
    {"type": "bandwidth", "capabilities": {"bandwidth": true}}
  ]
}
"""

MODULES_K8S = "overlay\nbr_netfilter\n"

CHRONY_CONF = """\
pool 169.254.169.123 iburst
driftfile /var/lib/chrony/chrony.drift
makestep 1.0 3
rtcsync
"""


def default_files(ip: str, server: str, ca_b64: str) -> dict[str, str]:
    return {
        "/var/lib/kubelet/config.yaml": KUBELET_CONFIG,
        "/var/lib/kubelet/kubeadm-flags.env": KUBEADM_FLAGS.format(ip=ip),
        "/etc/kubernetes/kubelet.conf": KUBELET_KUBECONFIG.format(server=server, ca_b64=ca_b64),
        "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf": KUBEADM_DROPIN,
        "/etc/containerd/config.toml": CONTAINERD_CONFIG,
        "/etc/fstab": FSTAB,
        "/etc/cni/net.d/10-calico.conflist": CALICO_CONFLIST,
        "/etc/modules-load.d/k8s.conf": MODULES_K8S + "vxlan\n",
        "/etc/chrony/chrony.conf": CHRONY_CONF,
    }
