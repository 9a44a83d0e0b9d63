package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// What kubectl applies: k8sDir (kubectl apply -k deploy/k8s, the manifests of k8s/base)
// and k8sDevDir (kubectl apply -k deploy/k8s/dev: the same plus development Redis and MongoDB).
const (
	k8sDir    = "k8s"
	k8sDevDir = "k8s/dev"
)

// The decoders: client-go's scheme (every built-in kind), and the same in strict mode, which
// also rejects unknown and duplicate fields (a misspelt `readinesProbe` would otherwise be
// dropped without a word, and the Pod would run without it).
var (
	decoder       = scheme.Codecs.UniversalDeserializer()
	strictDecoder = serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict).UniversalDeserializer()
)

// clusterScoped are the kinds that have no namespace.
var clusterScoped = map[string]bool{
	"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true, "PersistentVolume": true,
	"StorageClass": true, "IngressClass": true, "PriorityClass": true, "RuntimeClass": true,
	"CustomResourceDefinition": true, "ValidatingWebhookConfiguration": true,
	"MutatingWebhookConfiguration": true, "APIService": true, "CSIDriver": true,
}

// object is one decoded manifest document.
type object struct {
	file string // relative to deploy/
	doc  int    // 1-based index of the document in its file
	kind string
	obj  runtime.Object
	meta metav1.Object
}

func (o object) String() string {
	name := o.meta.GetName()
	if ns := o.meta.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return fmt.Sprintf("%s (document %d): %s %s", o.file, o.doc, o.kind, name)
}

// decodeFile splits a multi-document YAML file and decodes each document strictly.
func decodeFile(path string) ([]object, []error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, []error{err}
	}
	var objs []object
	var errs []error
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: document %d: %v", path, i, err))
			break
		}
		if j, err := yaml.YAMLToJSON(doc); err == nil && (string(j) == "null" || len(bytes.TrimSpace(j)) == 0) {
			i-- // comments only
			continue
		}
		obj, gvk, err := decoder.Decode(doc, nil, nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: document %d does not decode with client-go's scheme: %v", path, i, err))
			continue
		}
		if _, _, err := strictDecoder.Decode(doc, nil, nil); err != nil {
			errs = append(errs, fmt.Errorf("%s: document %d (%s): %v", path, i, gvk.Kind, err))
			continue
		}
		m, err := meta.Accessor(obj)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: document %d: %v", path, i, err))
			continue
		}
		objs = append(objs, object{file: path, doc: i, kind: gvk.Kind, obj: obj, meta: m})
	}
	return objs, errs
}

// kustomization holds what the tests understand of a kustomization.yaml; anything else
// fails to parse, so that the tests never check a set of objects other than the one kubectl
// would apply.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

func readKustomization(dir string) (kustomization, error) {
	var k kustomization
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return k, err
	}
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		return k, fmt.Errorf("%s/kustomization.yaml: %v (the tests model resources and images only)", dir, err)
	}
	return k, nil
}

// objectSet is what one `kubectl apply -k DIR` applies.
type objectSet struct {
	name string
	objs []object
}

// loadSet decodes what the kustomization in dir lists, following folder references.
func loadSet(t *testing.T, dir string) objectSet {
	t.Helper()
	k, err := readKustomization(dir)
	if err != nil {
		t.Fatal(err)
	}
	set := objectSet{name: dir}
	for _, res := range k.Resources {
		p := filepath.Join(dir, res)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s/kustomization.yaml lists %s: %v", dir, res, err)
		}
		if fi.IsDir() {
			set.objs = append(set.objs, loadSet(t, p).objs...)
			continue
		}
		objs, errs := decodeFile(p)
		for _, err := range errs {
			t.Error(err)
		}
		set.objs = append(set.objs, objs...)
	}
	if len(set.objs) == 0 {
		t.Fatalf("%s: no objects", dir)
	}
	return set
}

// forEachSet runs f on the base and on the development overlay.
func forEachSet(t *testing.T, f func(t *testing.T, s objectSet)) {
	for _, dir := range []string{k8sDir, k8sDevDir} {
		t.Run(dir, func(t *testing.T) { f(t, loadSet(t, dir)) })
	}
}

func all[T runtime.Object](s objectSet) []T {
	var out []T
	for _, o := range s.objs {
		if v, ok := o.obj.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func (s objectSet) find(kind, namespace, name string) (object, bool) {
	for _, o := range s.objs {
		if o.kind == kind && o.meta.GetNamespace() == namespace && o.meta.GetName() == name {
			return o, true
		}
	}
	return object{}, false
}

// workload is a Deployment or a StatefulSet: what runs Pods.
type workload struct {
	object
	selector *metav1.LabelSelector
	replicas *int32
	tmpl     *corev1.PodTemplateSpec
	sts      *appsv1.StatefulSet
	dep      *appsv1.Deployment
}

func (s objectSet) workloads() []workload {
	var out []workload
	for _, o := range s.objs {
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			out = append(out, workload{object: o, selector: v.Spec.Selector, replicas: v.Spec.Replicas, tmpl: &v.Spec.Template, dep: v})
		case *appsv1.StatefulSet:
			out = append(out, workload{object: o, selector: v.Spec.Selector, replicas: v.Spec.Replicas, tmpl: &v.Spec.Template, sts: v})
		}
	}
	return out
}

// role is the meshd role the workload runs ("" for other images).
func (w workload) role() string {
	for _, c := range w.tmpl.Spec.Containers {
		if isMeshdImage(c.Image) && len(c.Args) > 0 {
			return c.Args[0]
		}
	}
	return ""
}

func (s objectSet) workloadOf(role string) (workload, bool) {
	for _, w := range s.workloads() {
		if w.role() == role {
			return w, true
		}
	}
	return workload{}, false
}

func isMeshdImage(image string) bool {
	return image == meshdImage || strings.HasPrefix(image, meshdImage+":") || strings.HasPrefix(image, meshdImage+"@")
}

// selects reports whether sel selects the Pods of w (in ns).
func selects(t *testing.T, ns string, sel *metav1.LabelSelector, w workload) bool {
	t.Helper()
	if w.meta.GetNamespace() != ns || sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return false
	}
	return !s.Empty() && s.Matches(labels.Set(w.tmpl.Labels))
}

// env is one variable as a container sees it.
type env struct {
	name  string
	value string // "" when not known here (a field of the Pod, say)
	from  string // where it comes from, for messages and comparisons
}

// containerEnv resolves a container's variables (envFrom first, then env, which wins) and
// reports references to ConfigMaps, Secrets and keys that are not in the set, and $(VAR)
// references to variables not defined before.
func (s objectSet) containerEnv(ns string, c corev1.Container) (map[string]env, []error) {
	out := map[string]env{}
	var errs []error
	data := func(kind, name string) (map[string]string, bool) {
		o, ok := s.find(kind, ns, name)
		if !ok {
			return nil, false
		}
		m := map[string]string{}
		switch v := o.obj.(type) {
		case *corev1.ConfigMap:
			for k, val := range v.Data {
				m[k] = val
			}
		case *corev1.Secret:
			for k, val := range v.Data {
				m[k] = string(val)
			}
			for k, val := range v.StringData {
				m[k] = val
			}
		}
		return m, true
	}
	for _, from := range c.EnvFrom {
		kind, name, optional := "ConfigMap", "", false
		switch {
		case from.ConfigMapRef != nil:
			name, optional = from.ConfigMapRef.Name, from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional
		case from.SecretRef != nil:
			kind, name, optional = "Secret", from.SecretRef.Name, from.SecretRef.Optional != nil && *from.SecretRef.Optional
		}
		m, ok := data(kind, name)
		if !ok {
			if !optional {
				errs = append(errs, fmt.Errorf("envFrom %s %s/%s, which is not in the manifests", kind, ns, name))
			}
			continue
		}
		for k, v := range m {
			out[from.Prefix+k] = env{from.Prefix + k, v, kind + " " + name + " key " + k}
		}
	}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			for _, m := range ref.FindAllStringSubmatch(e.Value, -1) {
				if _, ok := out[m[1]]; !ok {
					errs = append(errs, fmt.Errorf("env %s refers to $(%s), which is not defined before it: Kubernetes leaves it as is", e.Name, m[1]))
				}
			}
			out[e.Name] = env{e.Name, e.Value, "value"}
		case e.ValueFrom.SecretKeyRef != nil || e.ValueFrom.ConfigMapKeyRef != nil:
			kind, name, key, optional := "Secret", "", "", false
			if r := e.ValueFrom.SecretKeyRef; r != nil {
				name, key, optional = r.Name, r.Key, r.Optional != nil && *r.Optional
			} else {
				r := e.ValueFrom.ConfigMapKeyRef
				kind, name, key, optional = "ConfigMap", r.Name, r.Key, r.Optional != nil && *r.Optional
			}
			m, ok := data(kind, name)
			v, hasKey := m[key]
			if (!ok || !hasKey) && !optional {
				errs = append(errs, fmt.Errorf("env %s comes from %s %s/%s key %s, which is not in the manifests", e.Name, kind, ns, name, key))
			}
			out[e.Name] = env{e.Name, v, kind + " " + name + " key " + key}
		case e.ValueFrom.FieldRef != nil:
			out[e.Name] = env{e.Name, "", "fieldRef " + e.ValueFrom.FieldRef.FieldPath}
		default:
			out[e.Name] = env{e.Name, "", "valueFrom"}
		}
	}
	return out, errs
}

// containerPort resolves a probe's or a Service's port (a name or a number) to a port the
// container declares.
func containerPort(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

func probePort(p *corev1.Probe) (intstr.IntOrString, bool) {
	switch {
	case p == nil:
	case p.HTTPGet != nil:
		return p.HTTPGet.Port, true
	case p.TCPSocket != nil:
		return p.TCPSocket.Port, true
	case p.GRPC != nil:
		return intstr.FromInt32(p.GRPC.Port), true
	}
	return intstr.IntOrString{}, false
}

// --- The tests ---

// Every YAML file under k8s/ decodes, document by document, into a kind client-go knows,
// strictly (no unknown or duplicate field); objects have names, namespaced ones a namespace.
func TestManifestsDecode(t *testing.T) {
	n := 0
	err := filepath.WalkDir(k8sDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) || d.Name() == "kustomization.yaml" {
			return err
		}
		objs, errs := decodeFile(p)
		for _, err := range errs {
			t.Error(err)
		}
		if len(objs) == 0 && len(errs) == 0 {
			t.Errorf("%s holds no object", p)
		}
		for _, o := range objs {
			n++
			if o.meta.GetName() == "" {
				t.Errorf("%s has no name", o)
			}
			if ns := o.meta.GetNamespace(); clusterScoped[o.kind] && ns != "" {
				t.Errorf("%s: a %s has no namespace, yet it says %q", o, o.kind, ns)
			} else if !clusterScoped[o.kind] && ns == "" {
				t.Errorf("%s has no namespace: kubectl would put it in whatever namespace is current", o)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no manifests under k8s/")
	}
}

// Each kustomization lists every manifest of its folder (and only files that exist), sets no
// namespace (objects live in two), and its image override names the image the Pods use.
func TestKustomization(t *testing.T) {
	err := filepath.WalkDir(k8sDir, func(dir string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		var files []string
		for _, e := range entries {
			if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) && e.Name() != "kustomization.yaml" {
				files = append(files, e.Name())
			}
		}
		k, err := readKustomization(dir)
		if err != nil {
			t.Errorf("%s: %v (every folder of manifests needs a kustomization.yaml listing them)", dir, err)
			return nil
		}
		if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
			t.Errorf("%s/kustomization.yaml: apiVersion %q kind %q", dir, k.APIVersion, k.Kind)
		}
		if k.Namespace != "" {
			t.Errorf("%s/kustomization.yaml sets namespace %q: it would move every object there, the BotController's Role out of mesh-bots included", dir, k.Namespace)
		}
		for _, f := range files {
			if !slices.Contains(k.Resources, f) {
				t.Errorf("%s/kustomization.yaml does not list %s: kubectl apply -k would skip it", dir, f)
			}
		}
		seen := map[string]bool{}
		for _, r := range k.Resources {
			if seen[r] {
				t.Errorf("%s/kustomization.yaml lists %s twice", dir, r)
			}
			seen[r] = true
			fi, err := os.Stat(filepath.Join(dir, r))
			if err != nil {
				t.Errorf("%s/kustomization.yaml lists %s: %v", dir, r, err)
				continue
			}
			if !fi.IsDir() {
				if strings.Contains(filepath.ToSlash(filepath.Clean(r)), "/") {
					t.Errorf("%s/kustomization.yaml lists the file %s outside its folder: kustomize refuses it", dir, r)
				}
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, r, "kustomization.yaml")); err != nil {
				t.Errorf("%s/kustomization.yaml lists the folder %s, which has no kustomization.yaml", dir, r)
			}
			// kustomize refuses a base that contains the overlay ("cycle detected").
			if rel, err := filepath.Rel(filepath.Join(dir, r), dir); err == nil && !strings.HasPrefix(rel, "..") {
				t.Errorf("%s/kustomization.yaml builds on %s, which contains it: kustomize rejects that as a cycle; give the base its own folder", dir, r)
			}
		}
		if len(k.Images) > 0 {
			set := loadSet(t, dir)
			for _, img := range k.Images {
				used := false
				for _, w := range set.workloads() {
					for _, c := range w.tmpl.Spec.Containers {
						name, _, _ := strings.Cut(c.Image, ":")
						used = used || name == img.Name
					}
				}
				if !used {
					t.Errorf("%s/kustomization.yaml overrides the image %q, which no container uses: the override would do nothing", dir, img.Name)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// No two objects of a kind share a name in a namespace, and every namespace used is made
// by the manifests, mesh and mesh-bots among them, under the restricted Pod Security Standard.
func TestNamespaces(t *testing.T) {
	forEachSet(t, func(t *testing.T, s objectSet) {
		declared := map[string]*corev1.Namespace{}
		for _, ns := range all[*corev1.Namespace](s) {
			declared[ns.Name] = ns
		}
		for _, want := range []string{"mesh", "mesh-bots"} {
			ns, ok := declared[want]
			if !ok {
				t.Errorf("no Namespace %s", want)
				continue
			}
			if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
				t.Errorf("Namespace %s does not enforce the restricted Pod Security Standard (labels %v)", want, ns.Labels)
			}
		}
		seen := map[string]object{}
		for _, o := range s.objs {
			key := o.kind + " " + o.meta.GetNamespace() + "/" + o.meta.GetName()
			if prev, dup := seen[key]; dup {
				t.Errorf("%s and %s are the same object", prev, o)
			}
			seen[key] = o
			if ns := o.meta.GetNamespace(); ns != "" && declared[ns] == nil {
				t.Errorf("%s is in namespace %q, which no manifest makes", o, ns)
			}
		}
	})
}

// Every workload selects its own Pods and no other workload's; every container has both
// probes on a port it declares, requests and limits, and passes the restricted Pod
// Security Standard.
func TestWorkloads(t *testing.T) {
	forEachSet(t, func(t *testing.T, s objectSet) {
		ws := s.workloads()
		if len(ws) == 0 {
			t.Fatal("no Deployment or StatefulSet")
		}
		for _, w := range ws {
			if w.selector == nil || len(w.selector.MatchLabels)+len(w.selector.MatchExpressions) == 0 {
				t.Errorf("%s has no selector", w)
			} else if !selects(t, w.meta.GetNamespace(), w.selector, w) {
				t.Errorf("%s: selector %v does not match its Pod template's labels %v", w, w.selector, w.tmpl.Labels)
			}
			for _, other := range ws {
				if other.object.String() != w.object.String() && selects(t, w.meta.GetNamespace(), w.selector, other) {
					t.Errorf("%s: selector %v also matches the Pods of %s", w, w.selector, other)
				}
			}
			pod := &w.tmpl.Spec
			if pod.HostNetwork || pod.HostPID || pod.HostIPC {
				t.Errorf("%s shares the node's network, PID or IPC namespace", w)
			}
			for _, v := range pod.Volumes {
				if v.HostPath != nil {
					t.Errorf("%s mounts the node's %s (hostPath)", w, v.HostPath.Path)
				}
			}
			if len(pod.Containers) == 0 {
				t.Errorf("%s has no container", w)
			}
			for _, c := range pod.InitContainers {
				checkContainer(t, w, c, true)
			}
			for _, c := range pod.Containers {
				checkContainer(t, w, c, false)
			}
		}
	})
}

func checkContainer(t *testing.T, w workload, c corev1.Container, init bool) {
	t.Helper()
	at := fmt.Sprintf("%s: container %s", w, c.Name)
	pod := &w.tmpl.Spec
	last := c.Image[strings.LastIndex(c.Image, "/")+1:] // a registry's :port is no tag
	_, tag, hasTag := strings.Cut(last, ":")
	if (!hasTag && !strings.Contains(c.Image, "@sha256:")) || tag == "latest" {
		t.Errorf("%s: image %q: pin a version", at, c.Image)
	}
	for what, p := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		if init {
			break // init containers run to completion: no probes
		}
		if p == nil {
			t.Errorf("%s has no %s", at, what)
			continue
		}
		if port, ok := probePort(p); ok {
			if _, ok := containerPort(c, port); !ok {
				t.Errorf("%s: %s port %s is not one of the container's ports %v", at, what, port.String(), c.Ports)
			}
		} else if p.Exec == nil {
			t.Errorf("%s: %s has no handler", at, what)
		}
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[res]
		lim, hasLim := c.Resources.Limits[res]
		switch {
		case !hasReq:
			t.Errorf("%s has no %s request", at, res)
		case !hasLim:
			t.Errorf("%s has no %s limit", at, res)
		case req.Cmp(lim) > 0:
			t.Errorf("%s requests more %s (%s) than its limit (%s)", at, res, req.String(), lim.String())
		}
	}
	// The restricted Pod Security Standard (container settings override the Pod's).
	psc, csc := pod.SecurityContext, c.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	nonRoot, uid := psc.RunAsNonRoot, psc.RunAsUser
	if csc.RunAsNonRoot != nil {
		nonRoot = csc.RunAsNonRoot
	}
	if csc.RunAsUser != nil {
		uid = csc.RunAsUser
	}
	if nonRoot == nil || !*nonRoot {
		t.Errorf("%s: runAsNonRoot is not true", at)
	}
	if uid != nil && *uid == 0 {
		t.Errorf("%s runs as uid 0", at)
	}
	if csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", at)
	}
	if csc.Privileged != nil && *csc.Privileged {
		t.Errorf("%s is privileged", at)
	}
	if csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
		t.Errorf("%s does not drop ALL capabilities", at)
	} else if len(csc.Capabilities.Add) > 0 {
		t.Errorf("%s adds capabilities %v", at, csc.Capabilities.Add)
	}
	seccomp := psc.SeccompProfile
	if csc.SeccompProfile != nil {
		seccomp = csc.SeccompProfile
	}
	if seccomp == nil || (seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault && seccomp.Type != corev1.SeccompProfileTypeLocalhost) {
		t.Errorf("%s: no RuntimeDefault seccomp profile", at)
	}
}

// What only meshd's containers must hold: a role for argument, matching the Pod's
// component label; probes on the port the role serves them on (the gateway's MESH_ADDR,
// the others' MESH_ADMIN_ADDR), /healthz for liveness and /readyz for readiness; the
// Prometheus annotations on the same port; the image's user; a read-only root; only
// variables meshd reads; time to drain before SIGKILL; no API token unless needed.
func TestMeshdContainers(t *testing.T) {
	f := meshd(t)
	img := dockerfileFinal(t)
	forEachSet(t, func(t *testing.T, s objectSet) {
		roles := map[string]bool{}
		for _, w := range s.workloads() {
			pod := &w.tmpl.Spec
			for _, c := range pod.Containers {
				if !isMeshdImage(c.Image) {
					continue
				}
				at := fmt.Sprintf("%s: container %s", w, c.Name)
				if len(c.Command) > 0 {
					t.Errorf("%s sets command %q; the image's entrypoint is /meshd, the role goes in args", at, c.Command)
				}
				if len(c.Args) != 1 || !f.roles[c.Args[0]] {
					t.Errorf("%s: args %q; want exactly one meshd role of %v", at, c.Args, sortedKeys(f.roles))
					continue
				}
				role := c.Args[0]
				roles[role] = true
				if comp := w.tmpl.Labels["app.kubernetes.io/component"]; comp != role {
					t.Errorf("%s runs `meshd %s` in Pods labelled component=%q", at, role, comp)
				}
				envs, errs := s.containerEnv(w.meta.GetNamespace(), c)
				for _, err := range errs {
					t.Errorf("%s: %v", at, err)
				}
				for _, name := range sortedKeys(envs) {
					e := envs[name]
					if err := f.checkSetting(name, e.value); err != nil {
						t.Errorf("%s: %v (from %s)", at, err, e.from)
					}
				}
				if envs["REDIS_URL"].from == "" {
					t.Errorf("%s: no REDIS_URL; a role apart from the others needs Redis", at)
				}
				if (role == "gateway" || role == "api") && envs["MESH_JWT_SECRET"].from == "" {
					t.Errorf("%s: no MESH_JWT_SECRET; gateways and API workers must share one", at)
				}
				if (role == "gateway" || role == "api") && envs["MONGODB_URI"].from == "" {
					t.Errorf("%s: no MONGODB_URI; gateways and API workers keep files' bytes in GridFS", at)
				}

				// The port of /healthz, /readyz and /metrics.
				addrVar := "MESH_ADMIN_ADDR"
				if role == "gateway" {
					addrVar = "MESH_ADDR"
				}
				addr := envs[addrVar].value
				if addr == "" {
					addr = f.settings[addrVar]
				}
				if addr == "" {
					t.Errorf("%s: no %s: `meshd %s` then serves no /healthz, /readyz or /metrics, and its probes fail", at, addrVar, role)
					continue
				}
				port, err := addrPort(addr)
				if err != nil {
					t.Errorf("%s: %s %q: %v", at, addrVar, addr, err)
					continue
				}
				for what, want := range map[string]struct {
					p    *corev1.Probe
					path string
				}{"livenessProbe": {c.LivenessProbe, "/healthz"}, "readinessProbe": {c.ReadinessProbe, "/readyz"}} {
					if want.p == nil || want.p.HTTPGet == nil {
						t.Errorf("%s: %s is not an HTTP GET of %s", at, what, want.path)
						continue
					}
					if want.p.HTTPGet.Path != want.path {
						t.Errorf("%s: %s GETs %s; want %s (liveness must not depend on Redis: a Redis outage would restart every Pod)", at, what, want.p.HTTPGet.Path, want.path)
					}
					if got, ok := containerPort(c, want.p.HTTPGet.Port); !ok || int(got) != port {
						t.Errorf("%s: %s on port %s (%d); meshd %s serves it on %d (%s=%s)", at, what, want.p.HTTPGet.Port.String(), got, role, port, addrVar, addr)
					}
				}
				ann := w.tmpl.Annotations
				if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(port) || ann["prometheus.io/path"] != "/metrics" {
					t.Errorf("%s: Prometheus annotations %v; want scrape \"true\", port %d (%s), path /metrics", at, ann, port, addrVar)
				}

				csc, psc := c.SecurityContext, pod.SecurityContext
				if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem {
					t.Errorf("%s: readOnlyRootFilesystem is not true", at)
				}
				uid := psc.RunAsUser
				if csc != nil && csc.RunAsUser != nil {
					uid = csc.RunAsUser
				}
				if img.uid > 0 && (uid == nil || int(*uid) != img.uid) {
					t.Errorf("%s: runAsUser %v; the image's USER is %d (deploy/Dockerfile), whose /data it owns", at, ptrString(uid), img.uid)
				}

				// SIGTERM: preStop, then meshd drains for MESH_SHUTDOWN_TIMEOUT, then SIGKILL.
				grace := int64(30)
				if pod.TerminationGracePeriodSeconds != nil {
					grace = *pod.TerminationGracePeriodSeconds
				}
				var preStop int64
				if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
					preStop = c.Lifecycle.PreStop.Sleep.Seconds
				}
				drain := f.duration(t, "MESH_SHUTDOWN_TIMEOUT", envs["MESH_SHUTDOWN_TIMEOUT"].value)
				if float64(grace) <= float64(preStop)+drain.Seconds() {
					t.Errorf("%s: terminationGracePeriodSeconds %d is not longer than preStop %ds + MESH_SHUTDOWN_TIMEOUT %v: the drain is cut by SIGKILL", at, grace, preStop, drain)
				}
			}
			if w.role() == "" {
				continue
			}
			// Only the BotController talks to the Kubernetes API.
			sa := pod.ServiceAccountName
			if sa == "" || sa == "default" {
				if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
					t.Errorf("%s mounts a ServiceAccount token it has no use for (set automountServiceAccountToken: false)", w)
				}
			} else if _, ok := s.find("ServiceAccount", w.meta.GetNamespace(), sa); !ok {
				t.Errorf("%s runs as ServiceAccount %s, which is not in the manifests", w, sa)
			}
		}
		for _, role := range clusterRoles {
			if !roles[role] {
				t.Errorf("no workload runs `meshd %s`", role)
			}
		}
	})
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// meshd's ConfigMaps and Secrets (labelled app.kubernetes.io/name: meshd) hold only its
// variables; the JWT secret is one value for every gateway and API worker, and long enough
// for meshd to accept it.
func TestConfigAndSecrets(t *testing.T) {
	f := meshd(t)
	forEachSet(t, func(t *testing.T, s objectSet) {
		for _, cm := range all[*corev1.ConfigMap](s) {
			if cm.Labels["app.kubernetes.io/name"] != "meshd" {
				continue
			}
			for _, k := range sortedKeys(cm.Data) {
				if err := f.checkSetting(k, cm.Data[k]); err != nil {
					t.Errorf("ConfigMap %s/%s: %v", cm.Namespace, cm.Name, err)
				}
			}
		}
		for _, sec := range all[*corev1.Secret](s) {
			if sec.Labels["app.kubernetes.io/name"] != "meshd" {
				continue
			}
			keys := sortedKeys(sec.StringData)
			keys = append(keys, sortedKeys(sec.Data)...)
			for _, k := range keys {
				if err := f.checkSetting(k, ""); err != nil {
					t.Errorf("Secret %s/%s: %v", sec.Namespace, sec.Name, err)
				}
			}
		}
		sources := map[string][]string{}
		for _, role := range []string{"gateway", "api"} {
			w, ok := s.workloadOf(role)
			if !ok {
				continue
			}
			for _, c := range w.tmpl.Spec.Containers {
				envs, _ := s.containerEnv(w.meta.GetNamespace(), c)
				e, ok := envs["MESH_JWT_SECRET"]
				if !ok {
					continue
				}
				sources[e.from] = append(sources[e.from], w.meta.GetName())
				if len(e.value) < f.minSecret {
					t.Errorf("%s: MESH_JWT_SECRET (%s) is %d characters; meshd refuses fewer than %d", w, e.from, len(e.value), f.minSecret)
				}
			}
		}
		if len(sources) != 1 {
			t.Errorf("gateways and API workers take MESH_JWT_SECRET from %v; want one source for all", sources)
		}
	})
}

// Every Service selects Pods that exist, on ports they declare; every StatefulSet's
// serviceName is a headless Service of its Pods.
func TestServices(t *testing.T) {
	forEachSet(t, func(t *testing.T, s objectSet) {
		for _, svc := range all[*corev1.Service](s) {
			at := fmt.Sprintf("Service %s/%s", svc.Namespace, svc.Name)
			if len(svc.Spec.Selector) == 0 {
				t.Errorf("%s has no selector", at)
				continue
			}
			sel := &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}
			var matched []workload
			for _, w := range s.workloads() {
				if selects(t, svc.Namespace, sel, w) {
					matched = append(matched, w)
				}
			}
			if len(matched) == 0 {
				t.Errorf("%s selects %v: no Pod template has those labels", at, svc.Spec.Selector)
				continue
			}
			for _, p := range svc.Spec.Ports {
				target := p.TargetPort
				if target.Type == intstr.Int && target.IntVal == 0 {
					target = intstr.FromInt32(p.Port)
				}
				for _, w := range matched {
					found := false
					for _, c := range w.tmpl.Spec.Containers {
						_, ok := containerPort(c, target)
						found = found || ok
					}
					if !found {
						t.Errorf("%s: port %s targets %s, which no container of %s declares", at, p.Name, target.String(), w)
					}
				}
			}
		}
		for _, sts := range all[*appsv1.StatefulSet](s) {
			o, ok := s.find("Service", sts.Namespace, sts.Spec.ServiceName)
			if !ok {
				t.Errorf("StatefulSet %s/%s: serviceName %q is no Service of the manifests: its Pods get no DNS names", sts.Namespace, sts.Name, sts.Spec.ServiceName)
				continue
			}
			if svc := o.obj.(*corev1.Service); svc.Spec.ClusterIP != corev1.ClusterIPNone {
				t.Errorf("StatefulSet %s/%s: its Service %s is not headless (clusterIP: None)", sts.Namespace, sts.Name, svc.Name)
			}
		}
	})
}

// Each HPA scales a workload that exists, sets no replicas of its own (an apply would reset
// the count), and has CPU requests to measure utilisation against; gateway, api and proxy
// have one.
func TestAutoscalers(t *testing.T) {
	forEachSet(t, func(t *testing.T, s objectSet) {
		scaled := map[string]bool{}
		for _, h := range all[*autoscalingv2.HorizontalPodAutoscaler](s) {
			at := fmt.Sprintf("HorizontalPodAutoscaler %s/%s", h.Namespace, h.Name)
			ref := h.Spec.ScaleTargetRef
			o, ok := s.find(ref.Kind, h.Namespace, ref.Name)
			if !ok {
				t.Errorf("%s scales %s %s, which is not in the manifests", at, ref.Kind, ref.Name)
				continue
			}
			var w workload
			for _, x := range s.workloads() {
				if x.object.String() == o.String() {
					w = x
				}
			}
			if w.tmpl == nil {
				t.Errorf("%s scales %s, which runs no Pods", at, o)
				continue
			}
			scaled[w.role()] = true
			if w.replicas != nil {
				t.Errorf("%s: %s sets replicas: %d; every apply would reset what the autoscaler chose", at, w, *w.replicas)
			}
			if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
				t.Errorf("%s: minReplicas %s, maxReplicas %d", at, ptrString(h.Spec.MinReplicas), h.Spec.MaxReplicas)
			}
			for _, m := range h.Spec.Metrics {
				if m.Resource == nil || m.Resource.Name != corev1.ResourceCPU {
					continue
				}
				for _, c := range w.tmpl.Spec.Containers {
					if _, ok := c.Resources.Requests[corev1.ResourceCPU]; !ok {
						t.Errorf("%s scales on CPU, but container %s of %s requests none", at, c.Name, w)
					}
				}
			}
		}
		for _, role := range []string{"gateway", "api", "proxy"} {
			if !scaled[role] {
				t.Errorf("no HorizontalPodAutoscaler scales `meshd %s`", role)
			}
		}
	})
}

// Each PodDisruptionBudget selects Pods, and can be met with one Pod down: a minAvailable
// equal to the replicas would block every node drain.
func TestDisruptionBudgets(t *testing.T) {
	forEachSet(t, func(t *testing.T, s objectSet) {
		hpaMin := map[string]int32{}
		for _, h := range all[*autoscalingv2.HorizontalPodAutoscaler](s) {
			if h.Spec.MinReplicas != nil {
				hpaMin[h.Namespace+"/"+h.Spec.ScaleTargetRef.Kind+"/"+h.Spec.ScaleTargetRef.Name] = *h.Spec.MinReplicas
			}
		}
		for _, pdb := range all[*policyv1.PodDisruptionBudget](s) {
			at := fmt.Sprintf("PodDisruptionBudget %s/%s", pdb.Namespace, pdb.Name)
			var matched []workload
			for _, w := range s.workloads() {
				if selects(t, pdb.Namespace, pdb.Spec.Selector, w) {
					matched = append(matched, w)
				}
			}
			if len(matched) != 1 {
				t.Errorf("%s selects the Pods of %d workloads; want one", at, len(matched))
				continue
			}
			w := matched[0]
			replicas, ok := hpaMin[w.meta.GetNamespace()+"/"+w.kind+"/"+w.meta.GetName()]
			if !ok {
				replicas = 1
				if w.replicas != nil {
					replicas = *w.replicas
				}
			}
			if m := pdb.Spec.MinAvailable; m != nil && m.Type == intstr.Int && m.IntVal >= replicas {
				t.Errorf("%s: minAvailable %d with %d replicas of %s: no Pod may ever be evicted", at, m.IntVal, replicas, w)
			}
		}
	})
}

// The world: a StatefulSet of three replicas behind a headless Service, started together,
// each with its pod name for Raft id, the same peer list naming every replica at its stable
// DNS name and Raft port, its Raft data on its own volume, and a PodDisruptionBudget that
// keeps a quorum.
func TestWorld(t *testing.T) {
	forEachSet(t, func(t *testing.T, s objectSet) {
		w, ok := s.workloadOf("world")
		if !ok || w.sts == nil {
			t.Fatalf("`meshd world` does not run in a StatefulSet (found %v)", w.object)
		}
		sts := w.sts
		at := w.String()
		if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
			t.Errorf("%s: replicas %s; want 3", at, ptrString(sts.Spec.Replicas))
		}
		replicas := int(ptrOr(sts.Spec.Replicas, 1))
		if sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
			t.Errorf("%s: podManagementPolicy %q; want Parallel: in order, world-0 waits to be ready before world-1 starts, and it cannot be without a quorum", at, sts.Spec.PodManagementPolicy)
		}
		o, ok := s.find("Service", sts.Namespace, sts.Spec.ServiceName)
		if !ok {
			t.Fatalf("%s: no headless Service %q", at, sts.Spec.ServiceName)
		}
		svc := o.obj.(*corev1.Service)
		if !svc.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s: publishNotReadyAddresses is false: replicas could not resolve each other until ready, and they are ready only once they have", svc.Name)
		}
		var c *corev1.Container
		for i := range w.tmpl.Spec.Containers {
			if isMeshdImage(w.tmpl.Spec.Containers[i].Image) {
				c = &w.tmpl.Spec.Containers[i]
			}
		}
		if c == nil {
			t.Fatalf("%s: no meshd container", at)
		}
		envs, _ := s.containerEnv(sts.Namespace, *c)
		if e := envs["MESH_WORLD_ID"]; e.from != "fieldRef metadata.name" {
			t.Errorf("%s: MESH_WORLD_ID comes from %q; want the pod name (fieldRef metadata.name), stable across restarts", at, e.from)
		}
		raftAddr := envs["MESH_WORLD_RAFT_ADDR"].value
		raft, err := addrPort(raftAddr)
		if err != nil {
			t.Errorf("%s: MESH_WORLD_RAFT_ADDR %q: %v", at, raftAddr, err)
		}
		if got, ok := containerPort(*c, intstr.FromInt(raft)); !ok {
			t.Errorf("%s: no container port %d for Raft (MESH_WORLD_RAFT_ADDR %s); ports %v", at, raft, raftAddr, c.Ports)
		} else {
			served := false
			for _, p := range svc.Spec.Ports {
				port, ok := containerPort(*c, p.TargetPort)
				served = served || (ok && port == got)
			}
			if !served {
				t.Errorf("Service %s does not carry the Raft port %d", svc.Name, got)
			}
		}
		peers, err := parsePeers(envs["MESH_WORLD_PEERS"].value)
		if err != nil {
			t.Fatalf("%s: MESH_WORLD_PEERS %q: %v", at, envs["MESH_WORLD_PEERS"].value, err)
		}
		if len(peers) != replicas {
			t.Errorf("%s: %d replicas, %d peers in MESH_WORLD_PEERS (%v): a replica outside the list never votes, a peer that does not exist counts against the quorum", at, replicas, len(peers), sortedKeys(peers))
		}
		for i := 0; i < replicas; i++ {
			id := fmt.Sprintf("%s-%d", sts.Name, i)
			p, ok := peers[id]
			if !ok {
				t.Errorf("%s: MESH_WORLD_PEERS lacks %s (the pod name, hence its MESH_WORLD_ID)", at, id)
				continue
			}
			stable := id + "." + sts.Spec.ServiceName
			if p.host != stable && !strings.HasPrefix(p.host, stable+"."+sts.Namespace) {
				t.Errorf("%s: peer %s at host %q; want its stable DNS name %s", at, id, p.host, stable)
			}
			if p.port != raft {
				t.Errorf("%s: peer %s at port %d; replicas listen for Raft on %d", at, id, p.port, raft)
			}
		}
		data := envs["MESH_WORLD_DATA"].value
		claims := map[string]bool{}
		for _, vct := range sts.Spec.VolumeClaimTemplates {
			claims[vct.Name] = true
			if _, ok := vct.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
				t.Errorf("%s: volumeClaimTemplate %s requests no storage", at, vct.Name)
			}
		}
		mounts := map[string]string{}
		for _, m := range c.VolumeMounts {
			mounts[m.MountPath] = m.Name
		}
		if data == "" {
			t.Errorf("%s: no MESH_WORLD_DATA", at)
		} else if mp := mountHolding(mounts, data); mp == "" || !claims[mounts[mp]] {
			t.Errorf("%s: MESH_WORLD_DATA %s is on no volume from volumeClaimTemplates (mounts %v, claims %v): the Raft log would not survive the Pod", at, data, mounts, sortedKeys(claims))
		}
		pdbOK := false
		for _, pdb := range all[*policyv1.PodDisruptionBudget](s) {
			if selects(t, pdb.Namespace, pdb.Spec.Selector, w) && pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.IntValue() == replicas/2+1 {
				pdbOK = true
			}
		}
		if !pdbOK {
			t.Errorf("%s: no PodDisruptionBudget with minAvailable %d (a quorum of %d)", at, replicas/2+1, replicas)
		}
	})
}

func ptrOr[T any](p *T, or T) T {
	if p == nil {
		return or
	}
	return *p
}

// The BotController's ServiceAccount may do exactly what it needs, where it needs it: create,
// get, list, watch and delete Pods and get their logs, in mesh-bots, and nothing else.
func TestBotControllerRBAC(t *testing.T) {
	const botsNS = "mesh-bots"
	want := map[string][]string{
		"pods":     {"create", "delete", "get", "list", "watch"},
		"pods/log": {"get"},
	}
	forEachSet(t, func(t *testing.T, s objectSet) {
		w, ok := s.workloadOf("bots")
		if !ok {
			t.Fatal("no workload runs `meshd bots`")
		}
		pod := w.tmpl.Spec
		sa := pod.ServiceAccountName
		if sa == "" || sa == "default" {
			t.Fatalf("%s runs as the namespace's default ServiceAccount; want its own (mesh-bots-controller)", w)
		}
		if sa != "mesh-bots-controller" {
			t.Errorf("%s runs as ServiceAccount %s; want mesh-bots-controller", w, sa)
		}
		if pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken {
			t.Errorf("%s does not mount its ServiceAccount token: client-go's in-cluster config needs it", w)
		}
		if o, ok := s.find("ServiceAccount", w.meta.GetNamespace(), sa); ok {
			if a := o.obj.(*corev1.ServiceAccount).AutomountServiceAccountToken; a != nil && !*a && pod.AutomountServiceAccountToken == nil {
				t.Errorf("ServiceAccount %s does not mount its token, and %s does not ask for it", sa, w)
			}
		}
		if len(all[*rbacv1.ClusterRole](s))+len(all[*rbacv1.ClusterRoleBinding](s)) > 0 {
			t.Errorf("the manifests hold ClusterRoles or ClusterRoleBindings; nothing of The Mesh needs rights across the cluster")
		}
		bound := 0
		for _, rb := range all[*rbacv1.RoleBinding](s) {
			isSA := false
			for _, sub := range rb.Subjects {
				isSA = isSA || (sub.Kind == rbacv1.ServiceAccountKind && sub.Name == sa && sub.Namespace == w.meta.GetNamespace())
			}
			if !isSA {
				continue
			}
			at := fmt.Sprintf("RoleBinding %s/%s", rb.Namespace, rb.Name)
			if rb.Namespace != botsNS {
				t.Errorf("%s grants %s rights in %s; it needs them only in %s", at, sa, rb.Namespace, botsNS)
			}
			if rb.RoleRef.Kind != "Role" {
				t.Errorf("%s binds a %s; want a Role of %s", at, rb.RoleRef.Kind, botsNS)
				continue
			}
			o, ok := s.find("Role", rb.Namespace, rb.RoleRef.Name)
			if !ok {
				t.Errorf("%s binds Role %s, which is not in the manifests", at, rb.RoleRef.Name)
				continue
			}
			bound++
			got := map[string][]string{}
			for _, r := range o.obj.(*rbacv1.Role).Rules {
				if len(r.APIGroups) != 1 || r.APIGroups[0] != "" || len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
					t.Errorf("Role %s: rule %v: want the core API group only, no resourceNames", o.meta.GetName(), r)
				}
				for _, res := range r.Resources {
					got[res] = append(got[res], r.Verbs...)
				}
			}
			for res := range got {
				slices.Sort(got[res])
				got[res] = slices.Compact(got[res])
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Role %s/%s grants %v; the BotController needs exactly %v", o.meta.GetNamespace(), o.meta.GetName(), got, want)
			}
		}
		if bound == 0 {
			t.Errorf("no RoleBinding in %s gives ServiceAccount %s/%s a Role: it could not start a bot", botsNS, w.meta.GetNamespace(), sa)
		}
	})
}

// The Ingress sends clients to the gateway Service, with idle timeouts a WebSocket survives
// and a body limit no lower than meshd's.
func TestIngress(t *testing.T) {
	f := meshd(t)
	forEachSet(t, func(t *testing.T, s objectSet) {
		ings := all[*networkingv1.Ingress](s)
		if len(ings) == 0 {
			t.Fatal("no Ingress")
		}
		// The largest body a gateway takes: an upload (its file and the form around it) or
		// a JSON body, whichever is larger.
		maxBody := f.settings["MESH_MAX_BODY_BYTES"]
		maxFile := f.settings["MESH_MAX_FILE_BYTES"]
		if w, ok := s.workloadOf("gateway"); ok {
			envs, _ := s.containerEnv(w.meta.GetNamespace(), w.tmpl.Spec.Containers[0])
			if v := envs["MESH_MAX_BODY_BYTES"].value; v != "" {
				maxBody = v
			}
			if v := envs["MESH_MAX_FILE_BYTES"].value; v != "" {
				maxFile = v
			}
		}
		bodyLimit, _ := strconv.Atoi(maxBody)
		fileLimit, _ := strconv.Atoi(maxFile)
		limit := max(bodyLimit, fileLimit+64<<10)
		for _, ing := range ings {
			at := fmt.Sprintf("Ingress %s/%s", ing.Namespace, ing.Name)
			for _, rule := range ing.Spec.Rules {
				if rule.HTTP == nil {
					continue
				}
				for _, p := range rule.HTTP.Paths {
					b := p.Backend.Service
					if b == nil {
						t.Errorf("%s: path %s has no Service backend", at, p.Path)
						continue
					}
					o, ok := s.find("Service", ing.Namespace, b.Name)
					if !ok {
						t.Errorf("%s: backend Service %s is not in the manifests", at, b.Name)
						continue
					}
					found := false
					for _, sp := range o.obj.(*corev1.Service).Spec.Ports {
						found = found || (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number)
					}
					if !found {
						t.Errorf("%s: backend port %v is not a port of Service %s", at, b.Port, b.Name)
					}
				}
			}
			if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "nginx" {
				continue
			}
			for _, a := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
				v, err := strconv.Atoi(ing.Annotations["nginx.ingress.kubernetes.io/"+a])
				if err != nil || v < 300 {
					t.Errorf("%s: nginx.ingress.kubernetes.io/%s is %q; below 300 (seconds), ingress-nginx cuts quiet WebSockets (its default is 60)", at, a, ing.Annotations["nginx.ingress.kubernetes.io/"+a])
				}
			}
			size, err := nginxSize(ing.Annotations["nginx.ingress.kubernetes.io/proxy-body-size"])
			if err != nil || size < int64(limit) {
				t.Errorf("%s: proxy-body-size %q is under %d bytes (MESH_MAX_BODY_BYTES %s, MESH_MAX_FILE_BYTES %s and a form's overhead): nginx would refuse bodies meshd accepts (its default is 1m)",
					at, ing.Annotations["nginx.ingress.kubernetes.io/proxy-body-size"], limit, maxBody, maxFile)
			}
		}
	})
}

// nginxSize reads an nginx size ("1m", "512k", "0" for no limit -> a very large number).
func nginxSize(s string) (int64, error) {
	if s == "" {
		s = "1m" // ingress-nginx's default
	}
	mult := int64(1)
	switch strings.ToLower(s[len(s)-1:]) {
	case "k":
		mult, s = 1<<10, s[:len(s)-1]
	case "m":
		mult, s = 1<<20, s[:len(s)-1]
	case "g":
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if n == 0 && err == nil {
		return 1 << 62, nil
	}
	return n * mult, err
}

// Behind the gateways, every meshd Pod of the mesh namespace is covered by a NetworkPolicy
// on ingress (bot Pods must not reach the bus or the database directly), and bot Pods take
// no connections.
func TestNetworkPolicies(t *testing.T) {
	forEachSet(t, func(t *testing.T, s objectSet) {
		pols := all[*networkingv1.NetworkPolicy](s)
		covered := func(w workload) bool {
			for _, p := range pols {
				if p.Namespace == w.meta.GetNamespace() && slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && selects(t, p.Namespace, &p.Spec.PodSelector, w) {
					return true
				}
			}
			return false
		}
		for _, w := range s.workloads() {
			if w.role() == "gateway" {
				continue
			}
			if !covered(w) {
				t.Errorf("%s: no NetworkPolicy limits who may connect to it", w)
			}
		}
		bots := false
		for _, p := range pols {
			if p.Namespace == "mesh-bots" && len(p.Spec.PodSelector.MatchLabels)+len(p.Spec.PodSelector.MatchExpressions) == 0 &&
				slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && len(p.Spec.Ingress) == 0 {
				bots = true
			}
		}
		if !bots {
			t.Error("no NetworkPolicy denies connections to the bot Pods of mesh-bots")
		}
	})
}
