# frozen_string_literal: true

module Reactis
  # A reliable delayed queue on Redis Streams (the C core's queue.h).
  #
  #   q = Reactis::Queue.new("sms", url: "redis://localhost:6379/0")
  #   q.schedule(payload, delay: 900, id: "AAA")   # or at: Time
  #   q.cancel("AAA"); q.reschedule("AAA", delay: 60); q.stats
  #   q.work { |job| deliver(job.payload) }         # ack on return, retry on raise
  #
  # Every message is delivered at least once, on time, even when every worker
  # was offline when it fell due, when a worker dies mid-message (its
  # delivery is reclaimed after the visibility timeout) or when Redis
  # restarts (with AOF). No CONFIG and no keyspace notifications are needed.
  #
  # Ids are producer-chosen Strings (a correlation key such as "invoice:42",
  # 1..256 bytes) or generated (12 characters). Scheduling an id that is
  # already waiting keeps the waiting message unless replace: true.
  #
  # Options (nil keeps the core's default): visibility_timeout (seconds a
  # delivery is leased before it is reclaimed, 30), max_attempts (10),
  # max_payload (bytes, 1 MiB), dead_max (dead letters kept, 10000),
  # backoff_base and backoff_max (retry delays in seconds, 1 and 3600),
  # block_cap (longest a fetch blocks before re-checking, seconds, 2),
  # consumer and group names, encoding (nil: binary payloads), and every
  # connection option of Client. All consumers of a queue should use the same
  # visibility_timeout, max_attempts and dead_max.
  #
  # A Queue is used by one thread at a time; #work with concurrency: N makes
  # a handle per thread. #stop and #wakeup may be called from any thread or a
  # trap handler.
  class Queue
    include HandleOwner

    # What #schedule did: outcome is :added, :exists (the id was waiting: kept
    # as it was) or :replaced; due_ms is when the waiting message is due.
    Scheduled = Struct.new(:id, :outcome, :due_ms) do
      def added?
        outcome == :added
      end

      def exists?
        outcome == :exists
      end

      def replaced?
        outcome == :replaced
      end

      def due_at
        Time.at(due_ms / 1000r)
      end

      def to_s
        id
      end
    end

    # One delivery (from #fetch or #work) or one dead letter (from
    # #dead_letters). payload is the bytes the producer scheduled (binary
    # unless encoding:); attempt counts deliveries (1 the first time);
    # failures are handler failures before this delivery, crashes the
    # deliveries that timed out (the consumer died or overran its lease).
    # token identifies the delivery for ack/retry/fail (for a dead letter,
    # its entry in the dead stream).
    class Job
      attr_reader :queue, :id, :payload, :attempt, :failures, :crashes, :due_ms,
                  :enqueued_ms, :delivered_ms, :error, :token

      def initialize(queue, fields, enc)
        id, payload, @attempt, @failures, @crashes, @due_ms, @enqueued_ms,
          @delivered_ms, error, @token = fields
        @queue = queue
        @id = Internal.recode(id, enc)
        @payload = Internal.recode(payload, enc)
        @error = error.empty? ? nil : error.force_encoding(Encoding::UTF_8).scrub
      end

      def due_at
        Time.at(@due_ms / 1000r)
      end

      def enqueued_at
        Time.at(@enqueued_ms / 1000r)
      end

      def delivered_at
        Time.at(@delivered_ms / 1000r)
      end

      # Seconds between due and delivery.
      def lag
        (@delivered_ms - @due_ms) / 1000.0
      end

      def ack!
        @queue.ack(self)
      end

      def retry!(delay: nil, error: nil)
        @queue.retry(self, delay: delay, error: error)
      end

      def fail!(error = nil)
        @queue.fail(self, error)
      end

      # Keeps the delivery leased for seconds more (a long handler).
      def extend_lease(seconds = nil)
        @queue.extend_lease(self, seconds)
      end

      def inspect
        "#<Reactis::Queue::Job #{@id.inspect} attempt=#{@attempt} #{@payload.bytesize} bytes>"
      end
      alias to_s inspect
    end

    OUTCOMES = %i[added exists replaced].freeze
    # RX_SCHED_REPLACE of queue.h (reactis.i exports SCHED_AT only).
    SCHED_REPLACE = Cimpl.const_defined?(:SCHED_REPLACE) ? Cimpl::SCHED_REPLACE : 2
    MS_OPTIONS = {
      visibility_timeout: "visibility_timeout_ms", backoff_base: "backoff_base_ms",
      backoff_max: "backoff_max_ms", block_cap: "block_cap_ms"
    }.freeze

    attr_reader :name

    def initialize(name, url: nil, encoding: nil, **options)
      name = name.to_s if name.is_a?(Symbol)
      raise TypeError, "queue name must be a String, not #{name.class}" unless name.is_a?(String)
      # A C string cannot carry NUL (Python's SWIG layer raises ValueError
      # for it; ArgumentError is Ruby's equivalent: bad-input row 31).
      raise ArgumentError, "queue name cannot contain NUL: #{name.inspect}" if name.include?("\0")
      if name.empty? || name.bytesize > 200 || name.include?("{") || name.include?("}")
        # The core's own check and error, as Python gets it from C (row 32).
        raise InvalidArgumentError, "invalid queue name: 1..200 bytes without '{' or '}' are " \
                                    "allowed: #{name.inspect}"
      end
      url ||= ENV.fetch("REDIS_URL", "redis://localhost:6379")
      @name = name.dup.freeze
      @url = Internal.check_url(url)
      @encoding_option = encoding
      @encoding = Internal.encoding(encoding)
      @options = options
      @stop = false
      handle = Cimpl::Queue.new(@url, @name)
      apply(handle, options)
      @description = Cimpl.url_redact(@url)
      init_handle(handle)
    end

    # Another handle on the same queue with the same options (for a thread).
    def sibling
      self.class.new(@name, url: @url, encoding: @encoding_option, **@options)
    end

    # The URL with any password replaced by "***".
    def url
      @description
    end

    def inspect
      "#<#{self.class.name} #{@name} on #{@description}#{@closing ? ' (closed)' : ''}>"
    end
    alias to_s inspect

    # ---------------------------------------------------------------- producing

    # Schedules payload (a String: its bytes) after delay seconds, or at a
    # Time (at:), or now. id: a String to deduplicate, cancel and reschedule
    # by (nil: generate one). Returns a Scheduled (id, outcome, due_ms).
    # Raises Reactis::PayloadTooLargeError over max_payload.
    def schedule(payload, delay: nil, at: nil, id: nil, replace: false)
      payload = Internal.bytes(payload, "payload")
      when_ms, flags = due(delay, at)
      flags |= SCHED_REPLACE if replace
      mid = id.nil? ? nil : message_id(id)
      rc, out_id, outcome, due_ms = settled { |h| h.schedule(mid, payload, when_ms, flags) }
      raise Internal.interrupted(rc, "schedule") unless rc == Cimpl::OK
      Scheduled.new(Internal.recode(out_id, @encoding), OUTCOMES.fetch(outcome, :added), due_ms)
    end
    alias enqueue schedule

    MANY_KEYS = %i[payload delay at id replace].freeze
    private_constant :MANY_KEYS

    # Schedules many messages in few round trips (1000 per script call,
    # pipelined). Each item is a payload (a String), or a Hash with :payload
    # and any of :delay, :at, :id, :replace (as for #schedule). Returns one
    # Scheduled per item, in order ([] for none). Every item is checked
    # before anything is sent: a bad one (TypeError, ArgumentError,
    # Reactis::PayloadTooLargeError over max_payload) schedules nothing.
    # After an error while sending, some messages may have been scheduled;
    # sending the same items again is safe for those with ids.
    def schedule_many(messages)
      raise TypeError, "schedule_many needs an Enumerable of messages, not #{messages.class}" unless messages.respond_to?(:each)
      items = []
      messages.each { |m| items << many_item(m) }
      return [] if items.empty?
      with_handle do |h|
        h.batch_clear
        begin
          items.each { |id, payload, when_ms, flags| h.batch_add(id, payload, when_ms, flags) }
          h.batch_send
          # A batch_send that Ruby interrupted (a trap handler ran, nothing
          # raised) left no results; report it as #schedule would.
          begin
            h.batch_result(0)
          rescue InvalidArgumentError
            raise Internal.interrupted(Cimpl::EINTR, "schedule_many")
          end
          Array.new(h.batch_count) do |i|
            _rc, outcome, out_id, due_ms = h.batch_result(i)
            Scheduled.new(Internal.recode(out_id, @encoding), OUTCOMES.fetch(outcome, :added), due_ms)
          end
        ensure
          h.batch_clear
        end
      end
    end

    # Removes a waiting message: true when it was waiting, false when not
    # (unknown, already delivered, dead).
    def cancel(id)
      mid = message_id(id)
      found?(settled { |h| h.cancel(mid) }, "cancel")
    end

    # Moves a waiting message to a new due time: delay seconds from now or at
    # a Time. true when it was waiting, false when not.
    def reschedule(id, delay: nil, at: nil)
      when_ms, flags = due(delay, at)
      mid = message_id(id)
      found?(settled { |h| h.reschedule(mid, when_ms, flags) }, "reschedule")
    end

    # Makes a waiting message due now. true when it was waiting.
    def run_now(id)
      mid = message_id(id)
      found?(settled { |h| h.run_now(mid) }, "run_now")
    end

    # ---------------------------------------------------------------- consuming

    # Fetches up to max due messages (Jobs), waiting up to timeout seconds
    # (0: do not wait, nil: until one is due or #stop/#wakeup). [] when none.
    # Every fetch first promotes what fell due, so a backlog is delivered.
    #
    # ack: deliveries (Jobs or tokens, at most 1000) to acknowledge first,
    # in the same round trip: a loop's previous batch, as in
    # jobs = q.fetch(max: 100, ack: jobs). As with #ack_many, one that was
    # reclaimed meanwhile is skipped; the acks are made even when nothing is
    # due.
    def fetch(max: 1, timeout: 0, ack: nil)
      fetch_acking(max, timeout, ack).first
    end

    # Internal (Worker): #fetch, returning [jobs, acked, sent]: how many of
    # ack were acknowledged (stale ones are not) and how many were sent.
    def fetch_acking(max, timeout, ack)
      raise ArgumentError, "max must be an Integer in 1..1000" unless max.is_a?(Integer) && max.between?(1, 1000)
      raise TypeError, "timeout must be a number of seconds or nil" unless timeout.nil? || timeout.is_a?(Numeric)
      raise TypeError, "ack must be an Array of Jobs or tokens" unless ack.nil? || ack.respond_to?(:map)
      tokens = ack.nil? ? [] : ack.map { |j| token(j) }
      raise ArgumentError, "at most 1000 jobs to ack per fetch" if tokens.size > 1000
      sent = tokens.size
      joined = tokens.empty? ? nil : tokens.join(" ")
      acked = 0
      deadline = timeout && Internal.monotonic + timeout
      loop do
        if @stop || @closing
          @stop = false
          # Acks not made yet still go (raises when closed: they cannot).
          acked = ack_many(tokens) if joined
          return [[], acked, sent]
        end
        ms = if deadline
               [[((deadline - Internal.monotonic) * 1000).ceil, 0].max, Internal::SLICE_MS].min
             else
               Internal::SLICE_MS
             end
        if joined
          rc, acked, jobs = with_handle { |h| h.ack_fetch(joined, ms, max) }
          # Acknowledged once the script ran: it did unless a wakeup or a
          # signal cut the call short before (then none was, or all were
          # stale: sending them again is safe).
          joined = nil if rc == Cimpl::OK || rc == Cimpl::TIMEOUT || acked.positive?
        else
          rc, jobs = with_handle { |h| h.fetch(ms, max) }
        end
        return [jobs.map { |j| Job.new(self, j, @encoding) }, acked, sent] if rc == Cimpl::OK && !jobs.empty?
        # RX_TIMEOUT: nothing due in this slice; RX_WOKEN: #wakeup (then
        # @stop is set) or a stale wakeup; RX_EINTR: Ruby's interrupts ran.
        next unless deadline && Internal.monotonic >= deadline
        acked = ack_many(tokens) if joined
        return [[], acked, sent]
      end
    end

    # Acknowledges a delivery (a Job or its token): the message is done and
    # deleted. Raises Reactis::StaleDeliveryError when it was reclaimed and
    # redelivered meanwhile (the ack is refused).
    def ack(job)
      tok = token(job)
      rc = settled { |h| h.ack(tok) }
      raise Internal.interrupted(rc, "ack") unless rc == Cimpl::OK
      true
    end

    # Acknowledges many deliveries (Jobs or tokens) in one round trip.
    # Returns how many were acked: a delivery that was reclaimed and
    # redelivered meanwhile is skipped (not an error), the others are acked.
    def ack_many(jobs)
      tokens = jobs.map { |j| token(j) }
      return 0 if tokens.empty?
      joined = tokens.join(" ")
      rc, acked = settled { |h| h.ack_many(joined) }
      raise Internal.interrupted(rc, "ack_many") unless rc == Cimpl::OK || rc == Cimpl::ESTALE
      acked
    end

    # Internal (Worker): the visibility timeout in seconds.
    def visibility_seconds
      v = @options[:visibility_timeout]
      return v if v.is_a?(Numeric) && v.positive?
      ms = @options[:visibility_timeout_ms]
      ms = Integer(ms, exception: false) if ms.is_a?(String)
      ms.is_a?(Numeric) && ms.positive? ? ms / 1000.0 : 30
    end

    # The handler failed: the message goes back on the schedule after delay
    # seconds (nil: exponential backoff with jitter), with error as its last
    # error; after max_attempts deliveries it goes to the dead letters.
    # Returns :dead or :retry.
    def retry(job, delay: nil, error: nil)
      tok = token(job)
      delay_ms = delay.nil? ? -1 : Internal.ms(delay, "delay")
      text = error_text(error)
      rc, dead = settled { |h| h.retry(tok, delay_ms, text) }
      raise Internal.interrupted(rc, "retry") unless rc == Cimpl::OK
      dead == 1 ? :dead : :retry
    end

    # The handler failed for good: straight to the dead letters.
    def fail(job, error = nil)
      tok = token(job)
      text = error_text(error)
      rc = settled { |h| h.fail(tok, text) }
      raise Internal.interrupted(rc, "fail") unless rc == Cimpl::OK
      true
    end

    # Extends the lease of a delivery by seconds from now (nil: one
    # visibility timeout). Raises Reactis::StaleDeliveryError when it was
    # reclaimed already.
    def extend_lease(job, seconds = nil)
      tok = token(job)
      ms = seconds.nil? ? 0 : Internal.ms(seconds, "seconds")
      rc = settled { |h| h.extend(tok, ms) }
      raise Internal.interrupted(rc, "extend_lease") unless rc == Cimpl::OK
      true
    end

    # Makes a waiting #fetch return [] and ends #work after the jobs in hand,
    # at once. Safe from any thread and from trap handlers.
    def stop
      @worker&.stop
      wake_fetch
    end

    # Internal (Worker): ends the current or next wait of #fetch only.
    def wake_fetch
      @stop = true
      Internal.wake(@handle)
      nil
    end

    # Makes a waiting #fetch return [] (without ending #work).
    alias wakeup wake_fetch

    # Works the queue: fetches due messages and yields each Job; acks it when
    # the block returns, retries it with backoff when the block raises (after
    # max_attempts it goes dead). Returns after #stop, or after SIGTERM or
    # SIGINT (Ctrl-C) once the jobs in hand are done; a second signal stops at
    # once. concurrency: N works in N threads, each with its own connection.
    # signals: the signals that stop it gracefully (trapped only on the main
    # thread, previous handlers restored afterwards; [] to trap none).
    # max: jobs fetched per round trip, 1..1000, or nil (adaptive: 1..100,
    # sized so that a batch takes about 5% of the visibility timeout, at
    # most 1 s). The jobs of a batch that succeeded are acked in one round
    # trip (at least every second); a slow batch keeps the leases of the
    # jobs still waiting.
    def work(concurrency: 1, max: nil, signals: %w[TERM INT], &handler)
      raise ArgumentError, "work needs a block" unless handler
      raise Internal.state_error("#{@name}: already working") if @worker
      @worker = Worker.new([[self, handler]], concurrency: concurrency, max: max)
      begin
        @worker.run(signals: signals)
      ensure
        @worker = nil
        @stop = false # the stop that ended the work, not a future fetch's
      end
      self
    end

    # ---------------------------------------------------------------- dead letters

    # Up to limit dead letters (Jobs), oldest first, after the token after.
    def dead_letters(after: nil, limit: 100)
      raise ArgumentError, "limit must be an Integer in 1..1000" unless limit.is_a?(Integer) && limit.between?(1, 1000)
      rc, jobs = settled { |h| h.dead_list(after, limit) }
      raise Internal.interrupted(rc, "dead_letters") unless rc == Cimpl::OK
      jobs.map { |j| Job.new(self, j, @encoding) }
    end

    # Puts dead letters back on the schedule (one by token or Job, or all),
    # due after delay seconds, with fresh attempt counters. Returns how many.
    def requeue_dead(job = nil, delay: 0)
      tok = job.nil? ? nil : token(job)
      delay_ms = Internal.ms(delay, "delay")
      rc, count = settled { |h| h.dead_requeue(tok, delay_ms) }
      return 0 if rc == Cimpl::NOMATCH
      raise Internal.interrupted(rc, "requeue_dead") unless rc == Cimpl::OK
      count
    end

    # Deletes dead letters (one by token or Job, or all). Returns how many.
    def purge_dead(job = nil)
      tok = job.nil? ? nil : token(job)
      rc, count = settled { |h| h.dead_purge(tok) }
      return 0 if rc == Cimpl::NOMATCH
      raise Internal.interrupted(rc, "purge_dead") unless rc == Cimpl::OK
      count
    end

    # ---------------------------------------------------------------- observing

    # Cheap counters, one round trip: a Hash with :scheduled, :ready,
    # :in_flight, :dead, :lag_ms, :consumers, :next_due_ms (-1 if none),
    # :now_ms, :acked, :failures, :crashes, :dead_total.
    def stats
      rc, stats = settled(&:stats)
      raise Internal.interrupted(rc, "stats") unless rc == Cimpl::OK
      stats
    end

    # A warning found when the handle first connected (e.g. that the server's
    # maxmemory-policy may evict queue keys), or nil.
    def warning
      w = Internal.query(@handle, nil, &:warning)
      w.nil? || w.empty? ? nil : w
    end

    private

    def apply(handle, options)
      conn = {}
      options.each do |k, v|
        next if v.nil?
        if MS_OPTIONS.key?(k)
          handle.set_option(MS_OPTIONS[k], Internal.ms(v, k.to_s).to_s)
        else
          conn[k] = v
        end
      end
      Internal.apply_options(handle, conn)
    end

    def due(delay, at)
      raise ArgumentError, "give delay: or at:, not both" if delay && at
      if at
        epoch = case at
                when Time then at.to_r
                when Numeric then at.to_r
                else raise TypeError, "at: must be a Time, not #{at.class}"
                end
        [Internal.ms(epoch, "at"), Cimpl::SCHED_AT]
      else
        [delay.nil? ? 0 : Internal.ms(delay, "delay"), 0]
      end
    end

    # [id or nil, payload, when_ms, flags] for batch_add, checked here.
    def many_item(msg)
      return [nil, Internal.bytes(msg, "payload"), 0, 0] unless msg.is_a?(Hash)
      unknown = msg.keys - MANY_KEYS
      raise ArgumentError, "unknown message keys: #{unknown.map(&:inspect).join(', ')}" unless unknown.empty?
      raise ArgumentError, "a message Hash needs :payload" unless msg.key?(:payload)
      when_ms, flags = due(msg[:delay], msg[:at])
      flags |= SCHED_REPLACE if msg[:replace]
      [msg[:id].nil? ? nil : message_id(msg[:id]), Internal.bytes(msg[:payload], "payload"), when_ms, flags]
    end

    # The core checks ids (an empty one asks schedule for a generated id;
    # too long, or empty elsewhere, is InvalidArgumentError), as in Python.
    def message_id(id)
      Internal.bytes(id, "id")
    end

    def token(job)
      tok = job.is_a?(Job) ? job.token : job
      raise TypeError, "expected a Reactis::Queue::Job or its token, not #{job.class}" unless tok.is_a?(String)
      tok
    end

    def error_text(error)
      case error
      when nil then nil
      when Exception then "#{error.class}: #{error.message}"
      else error.to_s
      end
    end

    def found?(rc, what)
      return true if rc == Cimpl::OK
      return false if rc == Cimpl::NOMATCH
      raise Internal.interrupted(rc, what)
    end
  end
end
