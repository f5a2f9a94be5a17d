{{- define "kitefix.name" -}}{{ .Release.Name }}-kitefix{{- end -}}

{{- define "kitefix.labels" -}}
app.kubernetes.io/name: kitefix
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Environment shared by every kitefix container. */}}
{{- define "kitefix.env" -}}
- name: KITEFIX_SERVER__BIND
  value: "0.0.0.0:{{ .Values.service.port }}"
- name: KITEFIX_WEBHOOK__TOKEN_FILE
  value: /etc/kitefix/secrets/webhook-token
- name: KITEFIX_ADMIN__TOKEN_FILE
  value: /etc/kitefix/secrets/admin-token
- name: KITEFIX_SECURITY__ENCRYPTION_KEY_FILE
  value: /etc/kitefix/secrets/encryption-key
{{- if .Values.github.appId }}
- name: KITEFIX_GITHUB__APP_ID
  value: {{ .Values.github.appId | quote }}
- name: KITEFIX_GITHUB__PRIVATE_KEY_PATH
  value: /etc/kitefix/secrets/github-private-key
{{- end }}
{{- if eq .Values.mode "distributed" }}
- name: KITEFIX_QUEUE__KIND
  value: rabbitmq
- name: KITEFIX_QUEUE__URL
  valueFrom: { secretKeyRef: { name: {{ .Values.existingSecret }}, key: queue-url } }
- name: KITEFIX_STORE__URL
  valueFrom: { secretKeyRef: { name: {{ .Values.existingSecret }}, key: store-url } }
{{- else }}
- name: KITEFIX_STORE__URL
  value: sqlite:///data/kitefix.db
{{- end }}
{{- end -}}

{{- define "kitefix.container" -}}
- name: kitefix
  image: "{{ .root.Values.image.repository }}:{{ .root.Values.image.tag }}"
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  args: ["serve", "--config", "/etc/kitefix/config.toml", "--role", "{{ .role }}"]
  env:
    {{- include "kitefix.env" .root | nindent 4 }}
  ports:
    - { name: http, containerPort: {{ .root.Values.service.port }} }
  livenessProbe:
    httpGet: { path: /healthz, port: http }
    periodSeconds: 10
  readinessProbe:
    httpGet: { path: /readyz, port: http }
    periodSeconds: 5
  resources:
    {{- toYaml .resources | nindent 4 }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
  volumeMounts:
    - { name: config, mountPath: /etc/kitefix/config.toml, subPath: config.toml }
    - { name: secrets, mountPath: /etc/kitefix/secrets, readOnly: true }
    {{- if eq .root.Values.mode "single" }}
    - { name: data, mountPath: /data }
    {{- end }}
{{- end -}}

{{- define "kitefix.podMeta" -}}
labels:
  {{- include "kitefix.labels" .root | nindent 2 }}
  app.kubernetes.io/component: {{ .component }}
annotations:
  checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
  {{- if .root.Values.metrics.podAnnotations }}
  prometheus.io/scrape: "true"
  prometheus.io/port: {{ .root.Values.service.port | quote }}
  prometheus.io/path: /metrics
  {{- end }}
{{- end -}}

{{- define "kitefix.volumes" -}}
- name: config
  configMap: { name: {{ include "kitefix.name" . }} }
- name: secrets
  secret: { secretName: {{ .Values.existingSecret }}, optional: true }
{{- if eq .Values.mode "single" }}
- name: data
  persistentVolumeClaim: { claimName: {{ include "kitefix.name" . }}-data }
{{- end }}
{{- end -}}
