{{/* vim: set filetype=mustache: */}}

{{/* Chart name, truncated to 63 characters. */}}
{{- define "shopbridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Fully qualified app name: the release name, with the chart name in front unless it already contains it. */}}
{{- define "shopbridge.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "shopbridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of a component's objects: <fullname>-<component>, at most 63 characters. Args: dict root, component. */}}
{{- define "shopbridge.componentName" -}}
{{- printf "%s-%s" (include "shopbridge.fullname" .root | trunc 50 | trimSuffix "-") .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of a component. Args: dict root, component. */}}
{{- define "shopbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shopbridge.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Standard labels of a component. Args: dict root, component. */}}
{{- define "shopbridge.labels" -}}
helm.sh/chart: {{ include "shopbridge.chart" .root }}
{{ include "shopbridge.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: shopbridge
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels shared by every object of the release, for selectors that span components. */}}
{{- define "shopbridge.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "shopbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
A service's effective settings, as JSON: `defaults` with services.<name> merged over it (maps merge key by key,
lists and scalars replace). Args: dict root, name. Use: include ... | fromJson.
*/}}
{{- define "shopbridge.service" -}}
{{- $svc := index .root.Values.services .name | default dict -}}
{{- $merged := mergeOverwrite (deepCopy .root.Values.defaults) (deepCopy $svc) -}}
{{- $_ := set $merged "name" .name -}}
{{- toJson $merged -}}
{{- end -}}

{{/* Names of the enabled services, in order, as a JSON list. */}}
{{- define "shopbridge.enabledServices" -}}
{{- $names := list -}}
{{- range $name, $svc := .Values.services -}}
{{- if $svc.enabled -}}
{{- $names = append $names $name -}}
{{- end -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* Image reference. Args: dict root, image (a map with repository and optional tag). */}}
{{- define "shopbridge.image" -}}
{{- $registry := .root.Values.image.registry -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $registry) .image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* Name of a service's ServiceAccount. Args: dict root, svc (effective settings). */}}
{{- define "shopbridge.serviceAccountName" -}}
{{- if .svc.serviceAccount.create -}}
{{- .svc.serviceAccount.name | default (include "shopbridge.componentName" (dict "root" .root "component" .svc.name)) -}}
{{- else -}}
{{- .svc.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* Secret holding a service's database URL. Args: dict root, svc. */}}
{{- define "shopbridge.databaseSecretName" -}}
{{- .svc.database.existingSecret | default (printf "%s-db" (include "shopbridge.componentName" (dict "root" .root "component" .svc.name))) -}}
{{- end -}}

{{/* Environment variable of a config key "section.key" (or "section.table.key"): SHOPBRIDGE__SECTION__KEY. */}}
{{- define "shopbridge.envName" -}}
{{- printf "SHOPBRIDGE__%s" (. | upper | replace "." "__") -}}
{{- end -}}

{{- define "shopbridge.natsCredentialsDir" -}}/var/run/secrets/shopbridge/nats{{- end -}}
{{- define "shopbridge.configDir" -}}/etc/shopbridge{{- end -}}

{{/*
Environment shared by a service's pods and its migration Job: the database URL and secret config keys from
Secrets, OpenTelemetry resource attributes. Args: dict root, svc.
*/}}
{{- define "shopbridge.secretEnv" -}}
- name: SHOPBRIDGE__DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ include "shopbridge.databaseSecretName" . }}
      key: {{ .svc.database.key | quote }}
{{- $root := .root }}
{{- $svc := .svc }}
{{- range .svc.secretEnv }}
- name: {{ include "shopbridge.envName" .configKey }}
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret | default (printf "%s-secrets" (include "shopbridge.componentName" (dict "root" $root "component" $svc.name))) }}
      key: {{ .key | quote }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end -}}

{{- define "shopbridge.otelEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: OTEL_SERVICE_NAME
  value: {{ .svc.binary | quote }}
{{- $attrs := list (printf "service.namespace=%s" (include "shopbridge.fullname" .root)) (printf "service.version=%s" (.svc.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion)) "k8s.namespace.name=$(POD_NAMESPACE)" "k8s.pod.name=$(POD_NAME)" "k8s.node.name=$(NODE_NAME)" }}
{{- range $k, $v := .root.Values.otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%v" $k $v) }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attrs | quote }}
{{- end -}}

{{/*
TOML value: strings as JSON strings (valid TOML basic strings), whole numbers as integers (Helm reads every number
as a float), lists and inline tables recursively. A null fails the render with the offending value.
*/}}
{{- define "shopbridge.tomlKey" -}}
{{- if regexMatch "^[A-Za-z0-9_-]+$" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{- define "shopbridge.tomlValue" -}}
{{- $v := . -}}
{{- if kindIs "string" $v -}}
{{- toJson $v -}}
{{- else if kindIs "bool" $v -}}
{{- ternary "true" "false" $v -}}
{{- else if or (kindIs "float64" $v) (kindIs "float32" $v) -}}
{{- if eq (float64 (int64 $v)) (float64 $v) -}}{{ int64 $v }}{{- else -}}{{ $v }}{{- end -}}
{{- else if or (kindIs "int" $v) (kindIs "int64" $v) (kindIs "int32" $v) (kindIs "uint64" $v) -}}
{{- $v -}}
{{- else if kindIs "slice" $v -}}
[{{ range $i, $e := $v }}{{ if $i }}, {{ end }}{{ include "shopbridge.tomlValue" $e }}{{ end }}]
{{- else if kindIs "map" $v -}}
{ {{- range $i, $k := keys $v | sortAlpha }}{{ if $i }},{{ end }} {{ include "shopbridge.tomlKey" $k }} = {{ include "shopbridge.tomlValue" (index $v $k) }}{{ end }} }
{{- else -}}
{{- fail (printf "a config value (%v, of kind %s) cannot be written as TOML; remove it or give it a value" $v (kindOf $v)) -}}
{{- end -}}
{{- end -}}

{{/* A component's gRPC URL in the cluster: http://<fullname>-<component>:<ports.grpc>. Args: dict root, component. */}}
{{- define "shopbridge.grpcUrl" -}}
{{- printf "http://%s:%d" (include "shopbridge.componentName" .) (int .root.Values.ports.grpc) -}}
{{- end -}}

{{/* auth's JWKS document in the cluster: http://<fullname>-auth:<ports.http>/.well-known/jwks.json. Args: root. */}}
{{- define "shopbridge.jwksUrl" -}}
{{- printf "http://%s:%d/.well-known/jwks.json" (include "shopbridge.componentName" (dict "root" . "component" "auth")) (int .Values.ports.http) -}}
{{- end -}}

{{/* The gateway's public webhook URL: https://<ingress.host>/shopify/webhooks with the ingress, else "". Args: root. */}}
{{- define "shopbridge.webhookCallbackUrl" -}}
{{- if .Values.ingress.enabled -}}
{{- printf "https://%s/shopify/webhooks" .Values.ingress.host -}}
{{- end -}}
{{- end -}}

{{/*
The URLs the chart derives for a service's config when its values leave them "": each names the key under
`service`, the URL, and whether the service cannot start without it. A URL whose target is disabled is "".
Args: dict root, name. Use: include ... | fromJsonArray.
*/}}
{{- define "shopbridge.derivedUrls" -}}
{{- $root := .root -}}
{{- $on := $root.Values.services -}}
{{- $auth := ternary (include "shopbridge.grpcUrl" (dict "root" $root "component" "auth")) "" $on.auth.enabled -}}
{{- $jwks := ternary (include "shopbridge.jwksUrl" $root) "" $on.auth.enabled -}}
{{- $urls := list -}}
{{- if eq .name "auth" -}}
{{- $gateway := ternary (include "shopbridge.grpcUrl" (dict "root" $root "component" "gateway")) "" $on.gateway.enabled -}}
{{- $urls = append $urls (dict "key" "gateway.url" "url" $gateway "required" false) -}}
{{- else if eq .name "gateway" -}}
{{- $urls = append $urls (dict "key" "auth.url" "url" $auth "required" true) -}}
{{- $urls = append $urls (dict "key" "tokens.jwks_url" "url" $jwks "required" true) -}}
{{- $urls = append $urls (dict "key" "webhooks.callback_url" "url" (include "shopbridge.webhookCallbackUrl" $root) "required" false) -}}
{{- else if or (eq .name "listings") (eq .name "scheduler") (eq .name "orders") -}}
{{- $urls = append $urls (dict "key" "auth.jwks_url" "url" $jwks "required" true) -}}
{{- end -}}
{{- toJson $urls -}}
{{- end -}}

{{/*
Fills the derived URLs into a service's merged config (in place): a key left "" (or absent) gets the URL derived
from the release, a non-empty value is kept as an override. Args: dict root, name, cfg.
*/}}
{{- define "shopbridge.fillUrls" -}}
{{- $service := get .cfg "service" | default dict -}}
{{- range $d := include "shopbridge.derivedUrls" (dict "root" .root "name" .name) | fromJsonArray -}}
{{- $path := splitList "." $d.key -}}
{{- $table := $service -}}
{{- range $k := initial $path -}}
{{- if not (kindIs "map" (get $table $k)) -}}
{{- $_ := set $table $k (dict) -}}
{{- end -}}
{{- $table = get $table $k -}}
{{- end -}}
{{- $key := last $path -}}
{{- if not (get $table $key) -}}
{{- if and $d.required (not $d.url) -}}
{{- fail (printf "services.%s.config.service.%s is empty and auth is disabled (services.auth.enabled): set it to the URL of the auth serving this release" $.name $d.key) -}}
{{- end -}}
{{- $_ := set $table $key $d.url -}}
{{- end -}}
{{- end -}}
{{- $_ := set .cfg "service" $service -}}
{{- end -}}

{{/*
A service's effective config, as JSON: the common `config`, the service's `config` over it, then the keys the chart
owns (listen addresses, migrate_on_start, credentials file) and the in-cluster URLs left "" (derived from the
release: see shopbridge.derivedUrls). database.url is never set: it comes from a Secret.
Args: dict root, svc. Use: include ... | fromJson.
*/}}
{{- define "shopbridge.config" -}}
{{- $root := .root -}}
{{- $cfg := mergeOverwrite (deepCopy $root.Values.config) (deepCopy (.svc.config | default dict)) -}}
{{- $grpc := get $cfg "grpc" | default dict -}}
{{- $_ := set $grpc "listen" (printf "%s:%d" $root.Values.listenAddress (int $root.Values.ports.grpc)) -}}
{{- $_ := set $cfg "grpc" $grpc -}}
{{- $http := get $cfg "http" | default dict -}}
{{- $_ := set $http "listen" (printf "%s:%d" $root.Values.listenAddress (int $root.Values.ports.http)) -}}
{{- $_ := set $cfg "http" $http -}}
{{- $db := get $cfg "database" | default dict -}}
{{- $_ := set $db "migrate_on_start" (not $root.Values.migrations.enabled) -}}
{{- $_ := unset $db "url" -}}
{{- $_ := set $cfg "database" $db -}}
{{- $nats := get $cfg "nats" | default dict -}}
{{- if $root.Values.natsCredentials.existingSecret -}}
{{- $_ := set $nats "credentials_file" (printf "%s/%s" (include "shopbridge.natsCredentialsDir" $root) $root.Values.natsCredentials.key) -}}
{{- else -}}
{{- $_ := set $nats "credentials_file" "" -}}
{{- end -}}
{{- $_ := set $cfg "nats" $nats -}}
{{- include "shopbridge.fillUrls" (dict "root" $root "name" .svc.name "cfg" $cfg) -}}
{{- toJson $cfg -}}
{{- end -}}

{{/* A service's config file (TOML): shopbridge.config written out. Args: dict root, svc. */}}
{{- define "shopbridge.configToml" -}}
{{- $cfg := include "shopbridge.config" . | fromJson -}}
# Generated by the shopbridge chart for {{ .svc.name }}. database.url comes from the environment (a Secret).
{{- range $section := keys $cfg | sortAlpha }}
{{- $table := index $cfg $section }}
{{- if not (kindIs "map" $table) }}
{{- fail (printf "config.%s must be a table (a map), got %s" $section (kindOf $table)) }}
{{- end }}

[{{ include "shopbridge.tomlKey" $section }}]
{{- range $key := keys $table | sortAlpha }}
{{ include "shopbridge.tomlKey" $key }} = {{ include "shopbridge.tomlValue" (index $table $key) }}
{{- end }}
{{- end }}
{{ end -}}

{{/* Volumes and mounts for the NATS credentials file. Args: root. */}}
{{- define "shopbridge.natsCredsVolume" -}}
{{- if .Values.natsCredentials.existingSecret -}}
- name: nats-credentials
  secret:
    secretName: {{ .Values.natsCredentials.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.natsCredentials.key | quote }}
        path: {{ .Values.natsCredentials.key | quote }}
{{- end }}
{{- end -}}

{{- define "shopbridge.natsCredsMount" -}}
{{- if .Values.natsCredentials.existingSecret -}}
- name: nats-credentials
  mountPath: {{ include "shopbridge.natsCredentialsDir" . }}
  readOnly: true
{{- end }}
{{- end -}}
