{{/*
Expand the name of the chart.
*/}}
{{- define "contrastgeo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "contrastgeo.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "contrastgeo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "contrastgeo.labels" -}}
helm.sh/chart: {{ include "contrastgeo.chart" . }}
{{ include "contrastgeo.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels
*/}}
{{- define "contrastgeo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "contrastgeo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "contrastgeo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "contrastgeo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: the GPU image when gpu.enabled.
*/}}
{{- define "contrastgeo.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.gpu.enabled }}
{{- $tag = default (printf "%s-gpu" $tag) .Values.gpu.imageTag }}
{{- end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{/*
The refit job's image: the worker image's tag + "-refit" (the Dockerfile's `refit` target,
with torch), unless refit.imageTag names another.
*/}}
{{- define "contrastgeo.refitImage" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- printf "%s:%s" .Values.image.repository (default (printf "%s-refit" $tag) .Values.refit.imageTag) }}
{{- end }}

{{/*
Environment shared by the worker and the refit job: the ConfigMap of settings, and the
secrets by reference (never their values).
*/}}
{{- define "contrastgeo.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "contrastgeo.fullname" . }}
env:
  {{- if .Values.gpu.enabled }}
  - name: CONTRASTGEO_DEVICE
    value: cuda
  {{- end }}
  {{- with .Values.kafka.sasl.existingSecret }}
  - name: CONTRASTGEO_SASL_USERNAME
    valueFrom:
      secretKeyRef:
        name: {{ . }}
        key: {{ $.Values.kafka.sasl.usernameKey }}
  - name: CONTRASTGEO_SASL_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ . }}
        key: {{ $.Values.kafka.sasl.passwordKey }}
  {{- end }}
  {{- with .Values.qdrant.existingSecret }}
  - name: CONTRASTGEO_QDRANT_API_KEY
    valueFrom:
      secretKeyRef:
        name: {{ . }}
        key: {{ $.Values.qdrant.apiKeyKey }}
  {{- end }}
  - name: HF_HOME
    value: /tmp/huggingface
{{- end }}

{{/*
Volumes for the model store (read-only for workers) and scratch space.
*/}}
{{- define "contrastgeo.modelStoreClaim" -}}
{{- default (printf "%s-models" (include "contrastgeo.fullname" .)) .Values.persistence.modelStore.existingClaim }}
{{- end }}
