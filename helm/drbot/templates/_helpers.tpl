{{- define "drbot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "drbot.fullname" -}}
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

{{- define "drbot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "drbot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: drbot
{{- end -}}

{{/* Selector labels of one component: include "drbot.selector" (list . "bot") */}}
{{- define "drbot.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "drbot.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "drbot.image" -}}
{{ required "set image.repository to the drbot image you built and pushed (docs/deploy.md, The image)" .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "drbot.signingSecret" -}}
{{- .Values.signingKey.existingSecret | default (printf "%s-signing" (include "drbot.fullname" .)) -}}
{{- end -}}
{{- define "drbot.botSecret" -}}
{{- .Values.bot.existingSecret | default (printf "%s-bot" (include "drbot.fullname" .)) -}}
{{- end -}}
{{- define "drbot.workerSecret" -}}
{{- .Values.worker.existingSecret | default (printf "%s-worker" (include "drbot.fullname" .)) -}}
{{- end -}}
{{- define "drbot.redisSecret" -}}
{{- .Values.redis.auth.existingSecret | default (printf "%s-redis" (include "drbot.fullname" .)) -}}
{{- end -}}
{{- define "drbot.configMap" -}}
{{- .Values.config.existingConfigMap | default (printf "%s-config" (include "drbot.fullname" .)) -}}
{{- end -}}

{{/* The Redis URL of one process: include "drbot.redisUrl" (list . "bot"). With the bundled
Redis each process is its own ACL user (files/redis-users.acl); the password comes from a file. */}}
{{- define "drbot.redisUrl" -}}
{{- $user := index . 1 -}}
{{- with index . 0 -}}
{{- if .Values.redis.bundled -}}
redis://{{ $user }}@{{ include "drbot.fullname" . }}-redis.{{ .Release.Namespace }}.svc:6379/0
{{- else -}}
{{- required "redis.url is required when redis.bundled is false (e.g. rediss://redis.example:6380/0)" .Values.redis.url -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The key of one process's Redis password in the Redis Secret: with the bundled Redis its own
user's (redis.auth.users), else the one shared password (redis.auth.key). */}}
{{- define "drbot.redisKey" -}}
{{- $user := index . 1 -}}
{{- with index . 0 -}}
{{- if .Values.redis.bundled -}}
{{- required (printf "redis.auth.users.%s: the key of the %s's Redis password in the Redis Secret" $user $user) (index .Values.redis.auth.users $user) -}}
{{- else -}}
{{- .Values.redis.auth.key -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Environment every drbot process shares: Redis, the signing key, the files, HTTP, logs.
include "drbot.env" (list . "bot"): the process names its Redis user. */}}
{{- define "drbot.env" -}}
{{- $process := index . 1 -}}
{{- with index . 0 -}}
- name: REDIS_URL
  value: {{ include "drbot.redisUrl" (list . $process) | quote }}
- name: DRBOT_REDIS_PASSWORD_FILE
  value: /etc/drbot/redis/password
- name: DRBOT_SIGNING_KEY_FILE
  value: /etc/drbot/signing/key
- name: DRBOT_POLICY
  value: /etc/drbot/config/policy.yaml
- name: DRBOT_INVENTORY
  value: /etc/drbot/config/inventory.yaml
- name: DRBOT_HTTP_HOST
  value: "0.0.0.0"
- name: DRBOT_HTTP_PORT
  value: {{ .Values.http.port | quote }}
- name: DRBOT_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: DRBOT_LOG_JSON
  value: "true"
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "drbot.extraEnv" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "drbot.mounts" -}}
- name: config
  mountPath: /etc/drbot/config
  readOnly: true
- name: signing
  mountPath: /etc/drbot/signing
  readOnly: true
- name: redis-password
  mountPath: /etc/drbot/redis
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: home
  mountPath: /home/drbot
{{- end -}}

{{/* include "drbot.volumes" (list . "bot"): the process mounts only its own Redis password. */}}
{{- define "drbot.volumes" -}}
{{- $process := index . 1 -}}
{{- with index . 0 -}}
- name: config
  configMap:
    name: {{ include "drbot.configMap" . }}
    items:
      - {key: policy.yaml, path: policy.yaml}
      - {key: inventory.yaml, path: inventory.yaml}
- name: signing
  secret:
    secretName: {{ include "drbot.signingSecret" . }}
    defaultMode: 0440
    items:
      - key: {{ .Values.signingKey.key }}
        path: key
- name: redis-password
  secret:
    secretName: {{ include "drbot.redisSecret" . }}
    defaultMode: 0440
    items:
      - key: {{ include "drbot.redisKey" (list . $process) }}
        path: password
- name: tmp
  emptyDir: {}
- name: home
  emptyDir: {}
{{- end }}
{{- end -}}

{{- define "drbot.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}

{{/* Pod annotations: restart the pods when the policy or inventory changes. */}}
{{- define "drbot.podAnnotations" -}}
{{- $root := index . 0 -}}
checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
{{- with index . 1 }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "drbot.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Slack HTTP mode: refuse values with which the bot would not listen for Slack's requests. */}}
{{- define "drbot.slackHttp.check" -}}
{{- if .Values.slackHttp.enabled -}}
{{- $keys := .Values.bot.secretKeys | default dict -}}
{{- if not (index $keys "slack_bot_token") -}}
{{- fail "slackHttp.enabled needs bot.secretKeys.slack_bot_token (the key of the xoxb- bot token in the bot's Secret): without it the bot runs no Slack frontend" -}}
{{- end -}}
{{- if not (index $keys "slack_signing_secret") -}}
{{- fail "slackHttp.enabled (Slack HTTP mode) needs bot.secretKeys.slack_signing_secret: the key of the Slack app's signing secret in the bot's Secret, e.g. bot.secretKeys.slack_signing_secret=slack-signing-secret" -}}
{{- end -}}
{{- if index $keys "slack_app_token" -}}
{{- fail "slackHttp.enabled: bot.secretKeys still maps slack_app_token, with which the bot would use Socket Mode and never serve HTTP; set bot.secretKeys.slack_app_token to null or an empty string" -}}
{{- end -}}
{{- range $name := list "DRBOT_SLACK_APP_TOKEN" "DRBOT_SLACK_APP_TOKEN_FILE" -}}
{{- if or (hasKey ($.Values.env | default dict) $name) (hasKey ($.Values.bot.env | default dict) $name) -}}
{{- fail (printf "slackHttp.enabled: env or bot.env sets %s, with which the bot would use Socket Mode; remove it" $name) -}}
{{- end -}}
{{- end -}}
{{- if eq (int .Values.slackHttp.port) (int .Values.http.port) -}}
{{- fail (printf "slackHttp.port and http.port are both %v: the bot needs two ports" .Values.slackHttp.port) -}}
{{- end -}}
{{- end -}}
{{- end -}}
