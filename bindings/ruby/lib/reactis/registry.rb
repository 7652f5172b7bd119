# frozen_string_literal: true

module Reactis
  # Handlers an application registers for `rake reactis:work` and
  # `rake reactis:listen` (lib/reactis/tasks.rb), in a file that its
  # reactis:setup task loads:
  #
  #   Reactis.handle("sms") { |job| Sms.deliver(job.payload) }
  #   Reactis.on_pattern("__keyevent@*__:expired") { |msg| Timeouts.fire(msg.key_event.key) }
  #   Reactis.on_channel("chat:room-1") { |msg| ... }
  class << self
    # Registers the handler of queue name: a block, or an object that
    # responds to call(job) or perform(job).
    def handle(name, handler = nil, &block)
      h = handler || block
      raise ArgumentError, "handle needs a handler or a block" unless h
      if !h.respond_to?(:call) && h.respond_to?(:perform)
        obj = h
        h = ->(job) { obj.perform(job) }
      end
      raise TypeError, "a queue handler must respond to call(job)" unless h.respond_to?(:call)
      handlers[name.to_s] = h
    end

    # Queue name => handler.
    def handlers
      @handlers ||= {}
    end

    # Registers a listener for channels (SUBSCRIBE) or patterns (PSUBSCRIBE);
    # the block gets each Message (gaps too: check msg.gap?).
    def on_channel(*channels, &block)
      add_listener(:channel, channels, block)
    end

    def on_pattern(*patterns, &block)
      add_listener(:pattern, patterns, block)
    end

    # [[kind, name, block], ...]
    def listeners
      @listeners ||= []
    end

    # Works the named queues (registered handlers) until SIGTERM/SIGINT.
    def work(queues, url: nil, concurrency: 1, max: nil, signals: %w[TERM INT], **options)
      names = Array(queues).flat_map { |q| q.to_s.split(",") }.map(&:strip).reject(&:empty?)
      names = handlers.keys if names == ["*"]
      raise ArgumentError, "no queue to work: give QUEUE=name (registered: #{handlers.keys.join(', ')})" if names.empty?
      pairs = names.map do |n|
        h = handlers[n] or
          raise ArgumentError, "no handler registered for queue #{n.inspect}: call " \
                               "Reactis.handle(#{n.inspect}) { |job| ... } in a file your reactis:setup task loads"
        [Queue.new(n, url: url, **options), h]
      end
      begin
        Worker.new(pairs, concurrency: concurrency, max: max).run(signals: signals)
      ensure
        pairs.each { |q, _| q.close }
      end
    end

    # Subscribes to every registered channel and pattern (or the given ones)
    # and dispatches each Message to its listeners until SIGTERM/SIGINT.
    def listen(url: nil, channels: nil, patterns: nil, signals: %w[TERM INT], **options)
      chosen = listeners.select do |kind, name, _|
        kind == :channel ? (channels.nil? || channels.include?(name)) : (patterns.nil? || patterns.include?(name))
      end
      raise ArgumentError, "no listener registered (Reactis.on_channel / Reactis.on_pattern)" if chosen.empty?
      sub = Subscriber.new(url || ENV.fetch("REDIS_URL", "redis://localhost:6379"), **options)
      previous = {}
      if Thread.current == Thread.main
        (signals || []).each do |sig|
          previous[sig] = Signal.trap(sig) do
            raise(sig == "INT" ? Interrupt : SignalException.new(sig)) if sub.closed?
            sub.close
          end
        end
      end
      begin
        chosen.each { |kind, name, _| kind == :channel ? sub.subscribe(name) : sub.psubscribe(name) }
        Reactis.logger.info { "listening on #{sub.url}: #{chosen.map { |_, n, _| n }.join(', ')}" }
        sub.each_message do |msg|
          chosen.each do |kind, name, block|
            match = if msg.gap?
                      true
                    elsif kind == :pattern
                      msg.kind == :pmessage && msg.pattern == name.b
                    else
                      msg.kind != :pmessage && msg.channel == name.b
                    end
            block.call(msg) if match
          end
        end
      ensure
        previous.each { |sig, handler| Signal.trap(sig, handler || "DEFAULT") }
        sub.close
      end
    end

    private

    def add_listener(kind, names, block)
      raise ArgumentError, "needs a block" unless block
      raise ArgumentError, "needs at least one name" if names.empty?
      names.flatten.each { |n| listeners << [kind, n.to_s, block] }
      block
    end
  end
end
