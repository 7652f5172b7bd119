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
    # pairs: [[queue, handler], ...]; handler responds to call(job).
    def initialize(pairs, concurrency: 1, max: 1)
      raise ArgumentError, "concurrency must be an Integer >= 1" unless concurrency.is_a?(Integer) && concurrency >= 1
      raise ArgumentError, "max must be an Integer in 1..1000" unless max.is_a?(Integer) && max.between?(1, 1000)
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

    def work_loop(queue, handler)
      backoff = 0.1
      until @stopping
        begin
          jobs = queue.fetch(max: @max, timeout: nil)
          backoff = 0.1
        rescue ConnectionError, Reactis::TimeoutError, LoadingError, BusyError,
               ReadOnlyError, ServerOutOfMemoryError => e
          Reactis.logger.warn { "queue #{queue.name}: #{e.class}: #{e.message}; retrying in #{backoff} s" }
          pause(backoff)
          backoff = [backoff * 2, 5.0].min
          next
        end
        jobs.each { |job| perform(queue, job, handler) }
      end
    end

    def perform(queue, job, handler)
      begin
        handler.call(job)
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
        return
      end
      begin
        queue.ack(job)
      rescue StaleDeliveryError
        Reactis.logger.warn do
          "queue #{queue.name}: job #{job.id.inspect} took longer than its lease and was redelivered; " \
            "raise visibility_timeout or call job.extend_lease"
        end
      rescue Error => e
        Reactis.logger.error { "queue #{queue.name}: could not ack #{job.id.inspect}: #{e.message}" }
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
