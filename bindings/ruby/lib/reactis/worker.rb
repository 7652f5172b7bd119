# frozen_string_literal: true

module Reactis
  # Runs queue handlers until stopped: the loop behind Queue#work and
  # `rake reactis:work`. Each thread has its own queue handle (a handle is
  # used by one thread at a time). A job is acked when its handler returns
  # and retried with backoff when it raises; a stop (Worker#stop, SIGTERM,
  # SIGINT) lets the jobs in hand finish, then the threads end and #run
  # returns. Connection errors are logged and retried with backoff: a worker
  # outlives a Redis restart.
  class Worker
    # Largest adaptive batch, and the share of the visibility timeout a batch
    # may take (at most 1 s): as the Python worker.
    MAX_AUTO_BATCH = 100
    BATCH_SHARE = 0.05
    # Successes wait at most this long (seconds) for their batched ack.
    ACK_DELAY = 1.0

    # pairs: [[queue, handler], ...]; handler responds to call(job). max:
    # jobs per fetch (1..1000), nil for an adaptive batch.
    def initialize(pairs, concurrency: 1, max: nil)
      raise ArgumentError, "concurrency must be an Integer >= 1" unless concurrency.is_a?(Integer) && concurrency >= 1
      unless max.nil? || (max.is_a?(Integer) && max.between?(1, 1000))
        raise ArgumentError, "max must be nil (adaptive) or an Integer in 1..1000"
      end
      raise ArgumentError, "nothing to work" if pairs.empty?
      @pairs = pairs
      @concurrency = concurrency
      @max = max
      @stopping = false
      @queues = []
    end

    # Asks every thread to stop after the jobs in hand. Safe from any thread
    # and from trap handlers (no lock, no logging).
    def stop
      @stopping = true
      @queues.each(&:wake_fetch)
      nil
    end

    def stopping?
      @stopping
    end

    def run(signals: %w[TERM INT])
      previous = trap_signals(signals)
      slots = @pairs.flat_map do |queue, handler|
        Array.new(@concurrency) { |i| [i.zero? ? queue : queue.sibling, handler] }
      end
      @queues = slots.map(&:first)
      stop if @stopping # a signal that came while the handles were made
      names = @pairs.map { |q, _| q.name }.join(", ")
      Reactis.logger.info { "working #{names} (#{slots.size} thread(s)) on #{@pairs.first[0].url}" }
      if slots.size == 1
        work_loop(*slots.first)
      else
        threads = slots.map do |queue, handler|
          Thread.new do
            Thread.current.name = "reactis #{queue.name}" if Thread.current.respond_to?(:name=)
            work_loop(queue, handler)
          end
        end
        begin
          threads.each(&:join)
        ensure
          stop
          threads.each { |t| t.join(5) || t.kill }
        end
      end
      Reactis.logger.info { "stopped working #{names}" }
      self
    ensure
      restore_signals(previous)
      slots&.each { |q, _| q.close unless @pairs.any? { |pq, _| pq.equal?(q) } }
    end

    private

    # The acks of a batch go with the next fetch, in its round trip
    # (Queue#fetch with ack:); the last ones when the loop ends.
    def work_loop(queue, handler)
      backoff = 0.1
      size = @max || 1
      batch_seconds = [1.0, queue.visibility_seconds * BATCH_SHARE].min
      acks = []
      until @stopping
        begin
          jobs, acked, sent = queue.fetch_acking(size, nil, acks)
          warn_refused(queue, sent - acked) if acked < sent
          acks = []
          backoff = 0.1
        rescue ConnectionError, Reactis::TimeoutError, LoadingError, BusyError,
               ReadOnlyError, ServerOutOfMemoryError => e
          # The acks may not have been made: they go with the next try
          # (one made already is then stale, which is no error).
          Reactis.logger.warn { "queue #{queue.name}: #{e.class}: #{e.message}; retrying in #{backoff} s" }
          pause(backoff)
          backoff = [backoff * 2, 5.0].min
          next
        rescue StateError
          break # closed: the acks in hand cannot go (logged below)
        end
        next if jobs.empty?
        t0 = Internal.monotonic
        acks = run_batch(queue, jobs, handler)
        next if @max
        # Adaptive: as many jobs as take about batch_seconds at the last pace.
        per_job = (Internal.monotonic - t0) / jobs.size
        size = (batch_seconds / [per_job, 1e-6].max).to_i.clamp(1, MAX_AUTO_BATCH)
      end
    ensure
      ack(queue, acks) unless acks.nil? || acks.empty?
    end

    # Runs the handler on each job in hand and returns the jobs that
    # succeeded and are not acked yet (they go with the next fetch). Acked
    # here: what is done when a batch has run past ACK_DELAY (at that point),
    # and what is done when the batch ends with an exception. When a batch
    # runs past half the visibility timeout, the jobs still waiting get
    # their leases extended.
    def run_batch(queue, jobs, handler)
      acks = []
      first_ack = nil
      lease_from = Internal.monotonic
      half = queue.visibility_seconds / 2.0
      finished = false
      begin
        jobs.each_with_index do |job, i|
          now = Internal.monotonic
          if now - lease_from > half && i.positive?
            # A slow batch: ack what is done, keep the leases of the rest.
            unless acks.empty?
              ack(queue, acks)
              acks = []
              first_ack = nil
            end
            extend_leases(queue, jobs[i..])
            lease_from = now
          end
          if first_ack && now - first_ack > ACK_DELAY
            ack(queue, acks)
            acks = []
            first_ack = nil
          end
          next unless perform(queue, job, handler)
          first_ack ||= Internal.monotonic
          acks << job
        end
        finished = true
        acks
      ensure
        ack(queue, acks) unless finished || acks.empty?
      end
    end

    def warn_refused(queue, refused)
      Reactis.logger.warn do
        "queue #{queue.name}: #{refused} job(s) took longer than their lease and were redelivered; " \
          "raise visibility_timeout or call job.extend_lease"
      end
    end

    # Runs the handler; true when the job is to be acked, false when it
    # failed (then it was retried here).
    def perform(queue, job, handler)
      handler.call(job)
      true
    rescue StandardError => e
      Reactis.logger.error do
        "queue #{queue.name}: job #{job.id.inspect} attempt #{job.attempt} failed: #{e.class}: #{e.message}"
      end
      begin
        outcome = queue.retry(job, error: e)
        Reactis.logger.error { "queue #{queue.name}: job #{job.id.inspect} is dead" } if outcome == :dead
      rescue StaleDeliveryError
        Reactis.logger.warn { "queue #{queue.name}: job #{job.id.inspect} was reclaimed meanwhile" }
      rescue Error => e2
        Reactis.logger.error { "queue #{queue.name}: could not retry #{job.id.inspect}: #{e2.message}" }
      end
      false
    end

    def ack(queue, jobs)
      if jobs.size == 1
        begin
          queue.ack(jobs.first)
        rescue StaleDeliveryError
          Reactis.logger.warn do
            "queue #{queue.name}: job #{jobs.first.id.inspect} took longer than its lease and was redelivered; " \
              "raise visibility_timeout or call job.extend_lease"
          end
        end
        return
      end
      acked = queue.ack_many(jobs)
      warn_refused(queue, jobs.size - acked) if acked < jobs.size
    rescue Error => e
      Reactis.logger.error do
        "queue #{queue.name}: could not ack #{jobs.size} job(s) (#{e.message}); they are redelivered " \
          "after the visibility timeout"
      end
    end

    def extend_leases(queue, jobs)
      jobs.each do |job|
        job.extend_lease
      rescue Error => e
        Reactis.logger.warn { "queue #{queue.name}: could not extend the lease of #{job.id.inspect}: #{e.message}" }
      end
    end

    # Sleeps up to seconds, ending early on stop.
    def pause(seconds)
      deadline = Internal.monotonic + seconds
      sleep([0.05, deadline - Internal.monotonic].min) while !@stopping && Internal.monotonic < deadline
    end

    def trap_signals(signals)
      return {} if signals.nil? || signals.empty? || Thread.current != Thread.main
      signals.each_with_object({}) do |sig, prev|
        prev[sig] = Signal.trap(sig) do
          # A second signal stops at once, as the default handler would.
          raise(sig == "INT" ? Interrupt : SignalException.new(sig)) if @stopping
          stop
        end
      end
    end

    def restore_signals(previous)
      previous&.each { |sig, handler| Signal.trap(sig, handler || "DEFAULT") }
    end
  end
end
