{{/*
The service's Deployment. The root filesystem is read-only: /tmp is an emptyDir (HOME points there),
and the model bundle, when the service needs one, is a read-only volume (a PVC by default), an
emptyDir that an init container fills, or in registry mode a writable emptyDir the service
downloads bundles into from MLflow. `persistence` mounts a writable claim (the retrainer's).
*/}}
{{- define "alama-lib.deployment" -}}
{{- $name := include "alama-lib.fullname" . -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "alama-lib.labels" . | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: {{ .Values.revisionHistoryLimit }}
  selector:
    matchLabels:
      {{- include "alama-lib.selectorLabels" . | nindent 6 }}
  {{- with .Values.strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "alama-lib.labels" . | nindent 8 }}
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include "alama-lib.configDict" . | sha256sum }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "alama-lib.serviceAccountName" . }}
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      securityContext:
        {{- include "alama-lib.podSecurityContext" . | nindent 8 }}
      {{- with .Values.global.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if and .Values.bundle.enabled .Values.bundle.initContainer.enabled (not (include "alama-lib.registryMode" .)) }}
      {{- $init := .Values.bundle.initContainer }}
      initContainers:
        - name: fetch-bundle
          image: {{ required "bundle.initContainer.image is required" $init.image }}
          imagePullPolicy: {{ .Values.global.image.pullPolicy }}
          {{- with $init.command }}
          command:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $init.args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          env:
            - name: BUNDLE_DIR
              value: {{ .Values.bundle.mountPath | quote }}
            - name: HOME
              value: /tmp
          securityContext:
            {{- include "alama-lib.containerSecurityContext" . | nindent 12 }}
          {{- with $init.resources | default .Values.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: bundle
              mountPath: {{ .Values.bundle.mountPath }}
      {{- end }}
      containers:
        - name: {{ .Chart.Name }}
          image: {{ include "alama-lib.image" . }}
          imagePullPolicy: {{ .Values.global.image.pullPolicy }}
          {{- with .Values.command }}
          command:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with .Values.args }}
          args:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          ports:
            {{- include "alama-lib.containerPorts" . | trim | nindent 12 }}
          envFrom:
            - configMapRef:
                name: {{ $name }}
          env:
            {{- include "alama-lib.env" . | trim | nindent 12 }}
          {{- with include "alama-lib.probes" . | trim }}
          {{- . | nindent 10 }}
          {{- end }}
          {{- with include "alama-lib.resources" . | trim }}
          {{- . | nindent 10 }}
          {{- end }}
          securityContext:
            {{- include "alama-lib.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if (.Values.persistence | default dict).enabled }}
            - name: data
              mountPath: {{ required "persistence.mountPath is required" .Values.persistence.mountPath }}
            {{- end }}
            {{- if .Values.bundle.enabled }}
            - name: bundle
              mountPath: {{ .Values.bundle.mountPath }}
              {{- if include "alama-lib.bundleReadOnly" . }}
              readOnly: true
              {{- end }}
            {{- end }}
            {{- with include "alama-lib.kafkaVolumeMounts" . | trim }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with .Values.extraVolumeMounts }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ .Values.tmpSizeLimit }}
        {{- if (.Values.persistence | default dict).enabled }}
        - name: data
          persistentVolumeClaim:
            claimName: {{ tpl (.Values.persistence.existingClaim | default (include "alama-lib.fullname" .)) . }}
        {{- end }}
        {{- if .Values.bundle.enabled }}
        - name: bundle
          {{- if include "alama-lib.registryMode" . }}
          emptyDir:
            sizeLimit: {{ .Values.bundle.registry.sizeLimit | default "2Gi" }}
          {{- else if .Values.bundle.initContainer.enabled }}
          emptyDir:
            sizeLimit: {{ .Values.bundle.initContainer.sizeLimit }}
          {{- else }}
          {{- tpl (toYaml (required "bundle.volume is required (for example a persistentVolumeClaim)" .Values.bundle.volume)) . | nindent 10 }}
          {{- end }}
        {{- end }}
        {{- with include "alama-lib.kafkaVolumes" . | trim }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- with .Values.extraVolumes }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if .Values.topologySpread.enabled }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: {{ .Values.topologySpread.topologyKey }}
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "alama-lib.selectorLabels" . | nindent 14 }}
      {{- end }}
{{- end -}}
